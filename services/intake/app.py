"""The intake FastAPI application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from services import ops
from services.intake import (
    idempotency,
    openapi,
    problems,
    routes_customers,
    routes_health,
    routes_issues,
    routes_microsoft,
    routes_ops,
    routes_partner,
    routes_webhooks,
)
from services.intake.accepts import Accepts
from services.intake.customer_lookups import CustomerLookups
from services.intake.fast_accept import FastAccept
from services.intake.guard import RequestGuard
from services.intake.key_checks import KeyChecks
from services.intake.ratelimit import KeyRateLimiter
from services.intake.recorded_keys import RecordedKeys
from services.runtime import Runtime
from services.settings import ServiceSettings
from shared.periodic import run_every

SERVICE = "intake"
log = logging.getLogger(__name__)


def create_app(settings: ServiceSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime(settings, service=SERVICE) as runtime:
            app.state.runtime = runtime
            batch = settings.api.batch_max
            linger = settings.api.batch_linger_ms / 1000
            app.state.accepts = accepts = Accepts(
                runtime.direct, max_batch=batch, linger_s=linger, relay=runtime.relay
            )
            # The reads of every request need no turn at a SQLite file's write gate.
            app.state.customers = customers = CustomerLookups(
                runtime.reads, max_batch=batch, linger_s=linger
            )
            app.state.key_checks = key_checks = KeyChecks(
                runtime.direct,
                reads=runtime.reads,
                pepper=settings.app.api_key_pepper.get_secret_value(),
                max_batch=batch,
                linger_s=linger,
            )
            app.state.recorded_keys = recorded_keys = RecordedKeys(
                runtime.reads, max_batch=batch, linger_s=linger
            )
            runtime.spawn("intake-idempotency-purge", partial(_purge_keys, runtime))
            try:
                yield
            finally:
                # Requests still waiting for their batch get their answer before the pool goes.
                await accepts.aclose()
                await key_checks.aclose()
                await customers.aclose()
                await recorded_keys.aclose()

    app = ops.ServiceApp(
        tracing=settings.tracing,
        title="csp-escalation intake API",
        version="1.0.0",
        description="Accepts customer issues from PSA tools and reports how each was routed.",
        lifespan=lifespan,
    )
    problems.install(app)
    openapi.install(app)
    app.state.rate_limiter = KeyRateLimiter(
        settings.api.rate_limit_per_minute, settings.api.rate_limit_burst
    )
    if not settings.tracing.exporting:
        # Inside the guard: a plain accept is answered there, the rest goes on to the routes.
        # FastAPI names and fills its server span in its routing: with spans exported, every
        # request is routed.
        app.add_middleware(FastAccept)
    app.add_middleware(RequestGuard, settings=settings.api)
    # A request tries the routes in the order they were added, and each router it passes costs
    # (the operations router about 80 function calls): the issues first, accepts being most.
    app.include_router(routes_issues.router)
    # The outbox keeps accepting while the broker is away, so only the database gates traffic.
    ops.install(app, service=SERVICE, ready_requires=("database",))
    app.include_router(routes_customers.router)
    app.include_router(routes_partner.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_health.router)
    app.include_router(routes_microsoft.router)
    app.include_router(routes_ops.router)
    return app


async def _purge_keys(runtime: Runtime, stop: asyncio.Event) -> None:
    """Forget idempotency keys past their 24 hours, every hour."""

    async def purge() -> None:
        purged = await idempotency.purge_expired(runtime.uow_factory)
        if purged:
            log.info("forgot %d expired idempotency keys", purged)

    await run_every(3600, stop, purge, logger=log, what="idempotency key purge")
