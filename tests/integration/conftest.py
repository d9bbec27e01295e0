"""The intake app in-process, on this test's real database and broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.intake.app import create_app
from services.settings import ServiceSettings
from shared.settings import DatabaseSettings, KafkaSettings, ReconcilerSettings


@pytest.fixture
async def api(
    database_url: str, bootstrap_servers: str, topic_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(
        database=DatabaseSettings(url=database_url),
        kafka=KafkaSettings(bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix),
        reconciler=ReconcilerSettings(enabled=False),
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client,
    ):
        yield client
