"""What every service's HTTP side has: ``/healthz``, ``/readyz``, ``/metrics``, request metrics,
server spans and per-request log context."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.runtime import Runtime
from shared.observability import metrics as prometheus

router = APIRouter(tags=["operations"])
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def install(
    app: FastAPI, *, service: str, ready_requires: tuple[str, ...] = ("database", "broker")
) -> None:
    """Mount the operations routes and count and time every request (the app was made with
    :func:`telemetry`, which traces it).

    ``ready_requires``: the checks that must pass for ``/readyz`` to answer 200 (all are run
    and reported either way)."""
    app.state.ready_requires = ready_requires
    app.include_router(router)
    app.add_middleware(RequestMetrics, service=service)


def telemetry() -> TelemetryConfig:
    """FastAPI's own tracing, for ``FastAPI(telemetry=...)``: one server span per request,
    continuing a caller's ``traceparent``; none for the operations routes, none per
    dependency. Its metrics and log records are off: Prometheus counts the requests here,
    and structlog writes the log lines."""
    return {
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "exclude": _untraced,
    }


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED


class RequestMetrics:
    """Requests and latency by route template and status, in plain ASGI (no extra task)."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            prometheus.HTTP_REQUESTS.labels(self.service, route, method, str(status)).inc()
            prometheus.HTTP_LATENCY.labels(self.service, route, method).observe(
                time.perf_counter() - started
            )


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the dependencies this service cannot work without answer",
    responses={503: {"description": "A dependency does not answer"}},
)
async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    for name, check in (("database", runtime.check_database), ("broker", runtime.check_broker)):
        try:
            await asyncio.wait_for(check(), timeout=5)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    required = request.app.state.ready_requires
    ready = all(checks[name] == "ok" for name in required)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
