"""Background passes repeated until shutdown: the sweeps, the reconciler, the dispatchers.

A pass that fails is logged and tried again at the next interval; the worker itself never
ends on its own. A database outage (or no pooled connection free in time) is a warning, since
``/readyz`` already reports the database; anything else is an error with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from shared.db.errors import log_failed_pass


async def stopped_after(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def run_every(
    interval_s: float,
    stop: asyncio.Event,
    one_pass: Callable[[], Awaitable[object]],
    *,
    logger: logging.Logger,
    what: str,
    again_if_busy: bool = False,
) -> None:
    """Run ``one_pass`` every ``interval_s`` until ``stop`` is set. With ``again_if_busy``, a
    pass that returns something truthy (it found work, so there may be more) is followed by the
    next one at once."""
    while not stop.is_set():
        busy: object = None
        try:
            busy = await one_pass()
        except Exception as exc:
            log_failed_pass(logger, what, exc)
        if again_if_busy and busy:
            continue
        await stopped_after(stop, interval_s)
