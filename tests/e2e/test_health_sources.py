"""Service health from the health.incidents topic and from Microsoft Graph, in the real stack."""

from __future__ import annotations

import uuid

import httpx
from aiokafka import AIOKafkaProducer

from shared.events.envelope import encode
from shared.events.models import HealthIncidentChanged
from tests.support.factories import eventually, issue_body, seed_partner
from tests.support.fake_graph import FakeGraph, graph_issue
from tests.support.stack import Stack


async def routed_classification(
    stack: Stack, headers: dict[str, str], body: dict[str, object]
) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=headers) as client:
        issue_id = (await client.post("/v1/issues", json=body)).json()["id"]
        view: dict[str, object] = {}

        async def routed() -> bool:
            nonlocal view
            view = (await client.get(f"/v1/issues/{issue_id}")).json()
            return view["status"] == "routed"

        await eventually(routed, timeout=30, message=stack.logs)
    classification = view["classification"]
    assert isinstance(classification, dict)
    return classification


async def test_an_incident_published_on_the_health_topic_links_later_issues(
    stack: Stack, database_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    _, value, headers = encode(
        HealthIncidentChanged(
            incident_id="SP777",
            title="Sites slow",
            service="SharePoint Online",
            classification="Incident",
            status="serviceDegradation",
            is_resolved=False,
        ),
        service="feed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{topic_prefix}health.incidents", value, key=b"SP777", headers=headers
        )
    finally:
        await producer.stop()

    async def stored() -> bool:
        async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as c:
            return any(i["id"] == "SP777" for i in (await c.get("/v1/health/incidents")).json())

    await eventually(stored, timeout=30, message=stack.logs)
    decision = await routed_classification(
        stack, partner.headers, issue_body(service="SharePoint Online", category="bug")
    )
    assert (decision["outcome"], decision["health_incident_id"]) == ("linked_to_incident", "SP777")


async def test_a_graph_incident_for_the_customers_tenant_links_the_issue(
    stack: Stack, database_url: str
) -> None:
    tenant = uuid.uuid4()
    partner = await seed_partner(database_url)
    graph = FakeGraph()
    graph.issues[str(tenant)] = [graph_issue("EX900", "Exchange Online", classification="incident")]
    async with graph.running():
        stack.extra_env.update(
            GRAPH_ENABLED="true",
            GRAPH_CLIENT_ID="app",
            GRAPH_CLIENT_SECRET="s3cret",
            GRAPH_AUTHORITY_URL=graph.url,
            GRAPH_BASE_URL=f"{graph.url}/v1.0",
        )
        await stack.start()
        linked = await routed_classification(
            stack,
            partner.headers,
            issue_body(
                service="Exchange Online", category="service_unavailable", tenant_id=str(tenant)
            ),
        )
        other = await routed_classification(
            stack,
            partner.headers,
            issue_body(
                service="Exchange Online",
                category="service_unavailable",
                tenant_id=str(uuid.uuid4()),
            ),
        )
    assert (linked["outcome"], linked["health_incident_id"]) == ("linked_to_incident", "EX900")
    assert other["outcome"] == "escalated_to_microsoft", "another tenant's incident does not match"
