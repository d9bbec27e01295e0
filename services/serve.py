"""Serve one or more service apps with uvicorn in one event loop, stopping all on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Coroutine, Generator, Sequence
from typing import Any, TypeVar

import uvicorn
import uvloop
from fastapi import FastAPI

T = TypeVar("T")


def run_services(main: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived service coroutine on uvloop (uvicorn only picks it when it makes the
    loop itself; ours is made here, so it is chosen here)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class _Server(uvicorn.Server):
    """Signals are handled once for all servers by ``serve_all``, not per server; ``up`` is set
    once the server has started (lifespan done, socket bound)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.up.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_all(apps: Sequence[tuple[FastAPI, str, int]], *, log_level: str = "info") -> None:
    servers = [
        _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                log_level=log_level.lower(),
                lifespan="on",
            )
        )
        for app, host, port in apps
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    settling = asyncio.create_task(_settle_heap_once_started(servers))
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        settling.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _settle_heap_once_started(servers: Sequence[_Server]) -> None:
    """Once every server has started, move what start-up built out of the cyclic collector's way.

    Modules, apps, engines, compiled rules and clients live as long as the process: some 160,000
    objects that every full collection would otherwise walk again, about 120 ms each time on the
    benchmark machine, stalling every request and event in flight. Frozen, a full collection
    walks only what the service made since. Objects still die when their last reference goes.
    """
    for server in servers:
        await server.up.wait()
    gc.collect()
    gc.freeze()
