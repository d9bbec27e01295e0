"""The notifier process: routes classified issues and delivers webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from services.notifier.connector import PartnerCenterConnector, SubmissionPolicy
from services.notifier.dispatcher import WebhookDispatcher
from services.notifier.gauges import run_gauges
from services.notifier.handler import IssueRouter, preload_batch
from services.notifier.overdue import run_overdue_sweep
from services.notifier.partner_center import PartnerCenterClient
from services.notifier.targets import guarded
from services.runtime import Runtime, Worker
from services.settings import ServiceSettings
from services.worker_app import create_worker_app
from shared.events.models import IssueClassified
from shared.kafka.consumer import ConsumerSpec
from shared.kafka.topics import NOTIFIER

GAUGE_INTERVAL_S = 10.0


def create_app(settings: ServiceSettings) -> FastAPI:
    def workers(runtime: Runtime) -> Sequence[tuple[str, Worker]]:
        async def deliver(stop: asyncio.Event) -> None:
            async with _http_client(settings) as client:
                dispatcher = WebhookDispatcher(
                    runtime.uow_factory,
                    settings.webhook,
                    guarded(client, allow_private=settings.webhook.allow_private_targets),
                    require_https=settings.app.environment == "production",
                )
                await dispatcher.run(stop)

        async def sweep(stop: asyncio.Event) -> None:
            await run_overdue_sweep(runtime.uow_factory, settings.microsoft.overdue_sweep_s, stop)

        async def file_with_microsoft(stop: asyncio.Event) -> None:
            async with _http_client(settings) as client:
                connector = PartnerCenterConnector(
                    runtime.uow_factory,
                    settings.partner_center,
                    PartnerCenterClient(settings.partner_center, client),
                )
                await connector.run(stop)

        async def gauges(stop: asyncio.Event) -> None:
            await run_gauges(runtime.uow_factory, GAUGE_INTERVAL_S, stop)

        workers: list[tuple[str, Worker]] = [
            ("notifier-webhooks", deliver),
            ("notifier-overdue", sweep),
            ("notifier-gauges", gauges),
        ]
        if settings.partner_center.enabled:
            workers.append(("notifier-partner-center", file_with_microsoft))
        return workers

    async def setup(runtime: Runtime, resources: AsyncExitStack) -> Sequence[ConsumerSpec]:
        router = IssueRouter(
            settings.microsoft.support_topics,
            SubmissionPolicy.from_settings(settings.partner_center),
        )
        return [
            ConsumerSpec(
                name=NOTIFIER,
                topic=IssueClassified.TOPIC,
                handler=router.handle,
                preload=preload_batch,
            )
        ]

    return create_worker_app(settings, service="notifier", setup=setup, extra_workers=workers)


@asynccontextmanager
async def _http_client(settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=settings.webhook.concurrency * 2)
    async with httpx.AsyncClient(
        follow_redirects=False, limits=limits, timeout=settings.webhook.timeout_s
    ) as client:
        yield client
