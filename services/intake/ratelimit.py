"""A token bucket per API key, in this process (several intake instances multiply the limit)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict


class KeyRateLimiter:
    def __init__(self, per_minute: int, burst: int, *, max_keys: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> int | None:
        """Spend one token; ``None`` if there was one, else whole seconds until there is."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._evict()
            return None
        self._buckets[key] = (tokens, now)
        self._evict()
        return max(1, math.ceil((1.0 - tokens) / self._rate))

    def _evict(self) -> None:
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
