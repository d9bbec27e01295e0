"""A sliding-window limit per key (Graph allows 240 service-health requests a minute)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable


class SlidingWindowLimiter:
    """``acquire(key)`` waits until one more request for ``key`` fits in the window."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limit = limit
        self._window = window_s
        self._clock = clock
        self._sleep = sleep
        self._sent: defaultdict[str, deque[float]] = defaultdict(deque)

    async def acquire(self, key: str) -> None:
        sent = self._sent[key]
        while True:
            now = self._clock()
            while sent and now - sent[0] >= self._window:
                sent.popleft()
            if len(sent) < self._limit:
                sent.append(now)
                return
            await self._sleep(self._window - (now - sent[0]))
