"""The Graph health provider against a local fake Graph over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from services.classifier.graph import GraphHealthProvider
from shared.settings import GraphSettings
from tests.support.fake_graph import FakeGraph, graph_issue

TENANT = uuid.UUID("3f2b6a8e-52a1-4c1e-9a53-0d6a1b2c3d4e")
OTHER = uuid.UUID("8d1c0b2a-1111-4c1e-9a53-0d6a1b2c3d4e")
PARTNER = uuid.uuid4()


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = FakeGraph()
    fake.issues[str(TENANT)] = [
        graph_issue("EX1", "Exchange Online"),
        graph_issue("EX2", "exchange online", classification="ADVISORY"),
        graph_issue("EX3", "Exchange Online", isResolved=True),
        graph_issue("EX4", "Exchange Online", status="ServiceRestored"),
        graph_issue("TM1", "Microsoft Teams"),
    ]
    async with fake.running():
        yield fake


def provider(
    graph: FakeGraph, client: httpx.AsyncClient, *, ttl: float = 60, timeout: float = 3
) -> GraphHealthProvider:
    settings = GraphSettings(
        enabled=True,
        client_id="app",
        client_secret=SecretStr("s3cret"),
        authority_url=graph.url,
        base_url=f"{graph.url}/v1.0",
    )
    return GraphHealthProvider(settings, client, timeout_s=timeout, cache_ttl_s=ttl)


async def test_active_incidents_for_the_service_are_read_across_pages_in_any_case(
    graph: FakeGraph,
) -> None:
    async with httpx.AsyncClient() as client:
        view = await provider(graph, client).lookup(
            partner_id=PARTNER, tenant_id=TENANT, service="Exchange Online"
        )
    assert view.available
    assert [(i.id, i.classification) for i in view.incidents] == [
        ("EX1", "incident"),
        ("EX2", "advisory"),
    ]
    assert graph.calls["issues"] == 3, "five issues at two a page"
    assert all(i.tenant_ids == (TENANT,) for i in view.incidents)


async def test_answers_are_cached_per_tenant_and_tokens_are_per_tenant(graph: FakeGraph) -> None:
    async with httpx.AsyncClient() as client:
        health = provider(graph, client)
        for service in ("Exchange Online", "Microsoft Teams"):
            await health.lookup(partner_id=PARTNER, tenant_id=TENANT, service=service)
        assert (graph.calls["token"], graph.calls["issues"]) == (1, 3)
        other = await health.lookup(partner_id=PARTNER, tenant_id=OTHER, service="Exchange Online")
    assert other.available
    assert other.incidents == ()
    assert graph.calls["token"] == 2


async def test_an_expired_token_is_replaced_once(graph: FakeGraph) -> None:
    async with httpx.AsyncClient() as client:
        health = provider(graph, client, ttl=0)
        await health.lookup(partner_id=PARTNER, tenant_id=TENANT, service="Microsoft Teams")
        graph.revoke_tokens()
        view = await health.lookup(partner_id=PARTNER, tenant_id=TENANT, service="Microsoft Teams")
    assert [i.id for i in view.incidents] == ["TM1"]
    assert graph.calls["token"] == 2


async def test_throttling_with_retry_after_is_waited_out(graph: FakeGraph) -> None:
    graph.throttle_next = 1
    async with httpx.AsyncClient() as client:
        view = await provider(graph, client).lookup(
            partner_id=PARTNER, tenant_id=TENANT, service="Microsoft Teams"
        )
    assert [i.id for i in view.incidents] == ["TM1"]


async def test_a_slow_graph_is_reported_unavailable_instead_of_blocking(graph: FakeGraph) -> None:
    graph.delay_s = 2
    async with httpx.AsyncClient() as client:
        view = await provider(graph, client, timeout=0.3).lookup(
            partner_id=PARTNER, tenant_id=TENANT, service="Exchange Online"
        )
    assert not view.available
    assert "no answer in 0.3s" in (view.note or "")


async def test_without_a_tenant_id_graph_is_not_asked_and_that_is_said(graph: FakeGraph) -> None:
    async with httpx.AsyncClient() as client:
        view = await provider(graph, client).lookup(
            partner_id=PARTNER, tenant_id=None, service="Exchange Online"
        )
    assert not view.available
    assert graph.calls["issues"] == 0


async def test_bad_credentials_are_an_unavailable_answer(graph: FakeGraph) -> None:
    settings = GraphSettings(
        enabled=True,
        client_id="app",
        client_secret=SecretStr("wrong"),
        authority_url=graph.url,
        base_url=f"{graph.url}/v1.0",
    )
    async with httpx.AsyncClient() as client:
        view = await GraphHealthProvider(settings, client, timeout_s=3, cache_ttl_s=0).lookup(
            partner_id=PARTNER, tenant_id=TENANT, service="Exchange Online"
        )
    assert not view.available
    assert view.note == "Graph failed: GraphError"
