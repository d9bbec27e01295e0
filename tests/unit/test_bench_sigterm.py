"""A benchmark stopped with SIGTERM unwinds like a cancelled one: what it started is stopped."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from bench.__main__ import _stopped_on_sigterm


async def test_sigterm_cancels_the_run_so_its_cleanup_runs() -> None:
    cleaned: list[str] = []

    async def run() -> str:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(30)
            return "finished"
        finally:
            cleaned.append("broker and services stopped, databases dropped")

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(_stopped_on_sigterm(run()), timeout=10)
    assert cleaned == ["broker and services stopped, databases dropped"]


async def test_a_run_that_ends_gives_its_result() -> None:
    async def run() -> str:
        return "results"

    assert await _stopped_on_sigterm(run()) == "results"
