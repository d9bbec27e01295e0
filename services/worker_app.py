"""A consumer service as a small FastAPI app: its lifespan runs the consumer loops and workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from services import ops
from services.runtime import Runtime, Worker
from services.settings import ServiceSettings
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec

# Builds the consumers once the runtime is up; clients it opens go on the exit stack.
Setup = Callable[[Runtime, AsyncExitStack], Awaitable[Sequence[ConsumerSpec]]]
ExtraWorkers = Callable[[Runtime], Sequence[tuple[str, Worker]]]


def create_worker_app(
    settings: ServiceSettings,
    *,
    service: str,
    setup: Setup,
    extra_workers: ExtraWorkers | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as resources, Runtime(settings, service=service) as runtime:
            app.state.runtime = runtime
            for spec in await setup(runtime, resources):
                loop = ConsumerLoop(
                    spec,
                    uow_factory=runtime.uow_factory,
                    kafka=settings.kafka,
                    settings=settings.consumer,
                )
                runtime.spawn(f"{service}-{spec.name}", loop.run)
            for name, worker in extra_workers(runtime) if extra_workers else ():
                runtime.spawn(name, worker)
            yield

    app = ops.ServiceApp(
        tracing=settings.tracing,
        title=f"csp-escalation {service}",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    ops.install(app, service=service)
    return app
