"""Serve one or more service apps with uvicorn in one event loop, stopping all on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import signal
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
    """Signals are handled once for all servers by ``serve_all``, not per server."""

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
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
