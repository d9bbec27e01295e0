"""Background passes: a failing pass is logged by kind and tried again; a busy one goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.periodic import run_every, stopped_after

pytestmark = pytest.mark.unit

LOGGER = "tests.periodic"


async def test_a_pass_that_fails_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    outcomes: list[BaseException | None] = [
        PoolTimeout("QueuePool limit of size 1 overflow 0 reached"),
        ValueError("a bug"),
        None,
    ]
    ran = 0

    async def one_pass() -> None:
        nonlocal ran
        ran += 1
        outcome = outcomes.pop(0)
        if not outcomes:
            stop.set()
        if outcome is not None:
            raise outcome

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await asyncio.wait_for(
            run_every(0.01, stop, one_pass, logger=logging.getLogger(LOGGER), what="sweep"),
            timeout=5,
        )
    assert ran == 3
    outage, fault = caplog.records
    assert outage.levelno == logging.WARNING
    assert "sweep skipped, database unavailable" in outage.getMessage()
    assert fault.levelno == logging.ERROR
    assert fault.exc_info is not None


@pytest.mark.parametrize(("again_if_busy", "expected"), [(True, 4), (False, 1)])
async def test_a_pass_that_found_work_is_followed_at_once_only_when_asked(
    again_if_busy: bool, expected: int
) -> None:
    stop = asyncio.Event()
    found = [3, 2, 1, 0]
    ran = 0

    async def one_pass() -> int:
        nonlocal ran
        ran += 1
        return found.pop(0) if found else 0

    # An hour's interval: only passes that go on at once fit in the half second.
    worker = asyncio.create_task(
        run_every(
            3600,
            stop,
            one_pass,
            logger=logging.getLogger(LOGGER),
            what="dispatch",
            again_if_busy=again_if_busy,
        )
    )
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(worker, timeout=5)
    assert ran == expected


async def test_a_stop_ends_the_wait_between_passes() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await asyncio.wait_for(stopped_after(stop, 3600), timeout=5)
    assert not await stopped_after(asyncio.Event(), 0.01)
