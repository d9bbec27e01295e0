"""Once its servers have started, a service freezes what start-up built out of the collector's
way, and the collector still frees what the service makes afterwards."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import weakref
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from services.serve import serve_all
from shared.ports import free_port


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_start_up_objects_are_frozen_once_serving_and_later_cycles_are_still_collected(
    unfrozen: None,
) -> None:
    app = FastAPI()
    built_at_start_up = Node()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"pong": built_at_start_up is not None}

    port = free_port()
    serving = asyncio.create_task(serve_all([(app, "127.0.0.1", port)], log_level="warning"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                if gc.get_freeze_count():
                    break
                await asyncio.sleep(0.05)
            assert gc.get_freeze_count() > 0
            assert not any(o is built_at_start_up for o in gc.get_objects())
            assert (await client.get("/ping")).json() == {"pong": True}

        first, second = Node(), Node()
        first.other, second.other = second, first
        gone = weakref.ref(first)
        del first, second
        gc.collect()
        assert gone() is None
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, timeout=10)
