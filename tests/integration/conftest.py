"""The intake app in-process, on this test's real database and broker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.intake.app import create_app
from services.settings import ServiceSettings
from shared.settings import DatabaseSettings, KafkaSettings, ReconcilerSettings


@pytest.fixture
def postgresql_only(database_url: str) -> None:
    """For tests of transactions running at once: SQLite runs one writer at a time (``BEGIN
    IMMEDIATE``), so nothing is written meanwhile and no row lock is waited for."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time: no transactions at once")


def intake_settings(
    database_url: str, bootstrap_servers: str, topic_prefix: str, **overrides: Any
) -> ServiceSettings:
    return ServiceSettings(
        database=DatabaseSettings(url=database_url),
        kafka=KafkaSettings(bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix),
        reconciler=ReconcilerSettings(enabled=False),
        **overrides,
    )


@contextlib.asynccontextmanager
async def serving_in_process(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan, and a client calling it in-process. Unhandled errors are raised in
    the test unless ``raise_app_exceptions`` is off (to see the 500 a client would get)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
            base_url="http://intake",
        ) as client,
    ):
        yield client


@pytest.fixture
async def api(
    database_url: str, bootstrap_servers: str, topic_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(intake_settings(database_url, bootstrap_servers, topic_prefix))
    async with serving_in_process(app) as client:
        yield client


@pytest.fixture
def leasing(database_url: str) -> None:
    """Skips a test of rows leased to a relay on SQLite, where the relay leases nothing."""
    if database_url.startswith("sqlite"):
        pytest.skip("on SQLite the relay leases nothing")
