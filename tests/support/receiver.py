"""A real HTTP webhook receiver on loopback that records what it is sent and answers as told."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.ports import free_port
from tests.support.http_server import serving


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class WebhookReceiver:
    """Answers with ``script`` in order, then with ``status_code``. Records every request,
    including those it answered slowly or with an error."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    status_code: int = 204
    delay_s: float = 0.0
    script: list[Reply] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def ids(self) -> set[str]:
        return {r.headers["webhook-id"] for r in self.received}

    async def _hook(self, request: Request) -> Response:
        self.received.append(
            Received(dict(request.headers), await request.body(), time.monotonic())
        )
        reply = self.script.pop(0) if self.script else Reply(self.status_code, delay_s=self.delay_s)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return Response(status_code=reply.status, headers=reply.headers)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookReceiver]:
        app = Starlette(routes=[Route("/hooks", self._hook, methods=["POST"])])
        async with serving(app, self.port):
            yield self
