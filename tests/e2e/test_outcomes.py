"""From HTTP in to webhook out, for every outcome, with real services, broker and database."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from shared.vocabulary import CspModel, Vehicle
from tests.support.factories import SeededPartner, eventually, issue_body, scalar, seed_partner
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack

CASES = [
    pytest.param(
        CspModel.DIRECT_BILL,
        (Vehicle.PREMIER_SUPPORT_FOR_PARTNERS, Vehicle.PARTNER_CLOUD_SUPPORT),
        {"category": "service_unavailable"},
        "escalated_to_microsoft",
        "premier_support_for_partners",
        "issue.escalated_to_microsoft",
        id="technical-escalation-premier",
    ),
    pytest.param(
        CspModel.DIRECT_BILL,
        (),
        {"category": "commercial", "title": "Incentive not paid"},
        "escalated_to_microsoft",
        "commercial_support",
        "issue.escalated_to_microsoft",
        id="commercial-escalation",
    ),
    pytest.param(
        CspModel.DIRECT_BILL,
        (Vehicle.PARTNER_CLOUD_SUPPORT,),
        {
            "category": None,
            "title": "Frage zur Rechnung",
            "description": "Die Rechnung ist zu hoch",
        },
        "partner_resolves",
        None,
        "issue.partner_action_required",
        id="billing-inferred-german",
    ),
    pytest.param(
        CspModel.INDIRECT_RESELLER,
        (Vehicle.PARTNER_CLOUD_SUPPORT,),
        {"category": "bug"},
        "routed_to_indirect_provider",
        None,
        "issue.routed_to_provider",
        id="indirect-reseller",
    ),
    pytest.param(
        CspModel.DIRECT_BILL,
        (),
        {"category": None, "title": "Hola", "description": "Llamadme"},
        "needs_information",
        None,
        "issue.needs_information",
        id="unclear-text",
    ),
]


async def subscribe(client: httpx.AsyncClient, partner: SeededPartner, url: str) -> str:
    response = await client.post("/v1/webhooks", json={"url": url}, headers=partner.headers)
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    assert secret.startswith("whsec_")
    return secret


async def routed_view(
    client: httpx.AsyncClient, partner: SeededPartner, issue_id: str, stack: Stack
) -> dict[str, Any]:
    view: dict[str, Any] = {}

    async def is_routed() -> bool:
        nonlocal view
        view = (await client.get(f"/v1/issues/{issue_id}", headers=partner.headers)).json()
        return view.get("status") == "routed"

    await eventually(is_routed, timeout=30, message=lambda: f"{view}\n{stack.logs()}")
    return view


@pytest.mark.parametrize(
    ("csp_model", "vehicles", "fields", "outcome", "vehicle", "event_type"), CASES
)
async def test_an_issue_is_classified_routed_and_announced_by_a_signed_webhook(
    stack: Stack,
    database_url: str,
    engine: AsyncEngine,
    csp_model: CspModel,
    vehicles: tuple[Vehicle, ...],
    fields: dict[str, Any],
    outcome: str,
    vehicle: str | None,
    event_type: str,
) -> None:
    partner = await seed_partner(database_url, csp_model=csp_model, vehicles=vehicles)
    await stack.start()
    async with (
        WebhookReceiver().running() as receiver,
        httpx.AsyncClient(base_url=stack.intake_url) as client,
    ):
        secret = await subscribe(client, partner, receiver.url)
        body = issue_body(**{k: v for k, v in fields.items() if v is not None})
        if fields.get("category", "x") is None:
            body.pop("category")
        accepted = await client.post("/v1/issues", json=body, headers=partner.headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["location"] == f"/v1/issues/{accepted.json()['id']}"
        issue_id = accepted.json()["id"]

        view = await routed_view(client, partner, issue_id, stack)
        assert view["classification"]["outcome"] == outcome
        assert view["classification"]["vehicle"] == vehicle
        assert [step["status"] for step in view["timeline"]] == ["received", "classified", "routed"]

        await eventually(lambda: _has(receiver), timeout=20, message=stack.logs)
        delivery = receiver.received[0]
        payload = Webhook(secret).verify(delivery.body, delivery.headers)
        assert payload["type"] == event_type
        assert payload["data"]["issue_id"] == issue_id
        assert payload["data"]["external_ref"] == body["external_ref"]
        assert payload["data"]["next_step"]

    requests = await scalar(engine, "SELECT count(*) FROM microsoft_requests")
    assert requests == (1 if outcome == "escalated_to_microsoft" else 0)
    if outcome == "escalated_to_microsoft":
        assert view["routing"]["microsoft_request_id"]
        record = orjson.loads(
            orjson.dumps(
                await scalar(engine, "SELECT partner_center_payload FROM microsoft_requests")
            )
        )
        record = orjson.loads(record) if isinstance(record, str) else record
        assert record["Title"].startswith("[Microsoft Teams]")
        assert record["Severity"] == "moderate"
    if outcome == "routed_to_indirect_provider":
        assert view["routing"]["provider"] == {"name": "Contoso Distribution"}


async def _has(receiver: WebhookReceiver, count: int = 1) -> bool:
    return len(receiver.received) >= count


async def test_an_active_incident_links_the_issue_instead_of_escalating(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    async with httpx.AsyncClient(base_url=stack.intake_url) as client:
        incident = await client.put(
            "/v1/health/incidents/TM123456",
            json={
                "title": "Calls drop",
                "service": "Microsoft Teams",
                "classification": "Incident",
                "status": "serviceDegradation",
                "isResolved": False,
            },
            headers=partner.headers,
        )
        assert incident.status_code == 200, incident.text
        accepted = await client.post("/v1/issues", json=issue_body(), headers=partner.headers)
        view = await routed_view(client, partner, accepted.json()["id"], stack)
    assert view["classification"]["outcome"] == "linked_to_incident"
    assert view["classification"]["health_incident_id"] == "TM123456"
    assert await scalar(engine, "SELECT count(*) FROM microsoft_requests") == 0


@pytest.mark.parametrize(
    ("answer", "source"),
    [
        ({"category": "service_unavailable", "note": "Nadie puede abrir Teams"}, "given"),
        ({"description": "Nadie puede abrir Teams desde las 9:00"}, "inferred"),
    ],
    ids=["category", "description"],
)
async def test_an_issue_that_needs_information_is_routed_again_once_answered(
    stack: Stack, database_url: str, engine: AsyncEngine, answer: dict[str, str], source: str
) -> None:
    partner = await seed_partner(database_url, vehicles=(Vehicle.PARTNER_CLOUD_SUPPORT,))
    await stack.start()
    async with (
        WebhookReceiver().running() as receiver,
        httpx.AsyncClient(base_url=stack.intake_url) as client,
    ):
        secret = await subscribe(client, partner, receiver.url)
        body = issue_body(title="Hola", description="Llamadme, por favor")
        body.pop("category")
        issue_id = (await client.post("/v1/issues", json=body, headers=partner.headers)).json()[
            "id"
        ]
        asked = await routed_view(client, partner, issue_id, stack)
        assert asked["classification"]["outcome"] == "needs_information"

        answered = await client.patch(
            f"/v1/issues/{issue_id}", json=answer, headers=partner.headers
        )
        assert answered.status_code == 200, answered.text
        view = await routed_view(client, partner, issue_id, stack)

        await eventually(lambda: _has(receiver, 2), timeout=20, message=stack.logs)
        types = [Webhook(secret).verify(d.body, d.headers)["type"] for d in receiver.received]

    assert view["classification"]["outcome"] == "escalated_to_microsoft"
    assert view["classification"]["category"] == "service_unavailable"
    assert view["classification"]["category_source"] == source
    assert view["classification"]["vehicle"] == "partner_cloud_support"
    assert view["routing"]["microsoft_request_id"]
    steps = [step["status"] for step in view["timeline"]]
    assert steps == ["received", "classified", "routed", "received", "classified", "routed"]
    assert types == ["issue.needs_information", "issue.escalated_to_microsoft"]
    assert await scalar(engine, "SELECT count(*) FROM microsoft_requests") == 1


async def test_the_psa_ticket_type_the_partner_maps_decides_over_the_text(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url, vehicles=(Vehicle.PARTNER_CLOUD_SUPPORT,))
    await stack.start()
    async with httpx.AsyncClient(base_url=stack.intake_url) as client:
        profile = {
            "csp_model": "direct_bill",
            "support_vehicles": ["partner_cloud_support"],
            "psa_types": {"Email / Mail flow": "configuration"},
        }
        put = await client.put("/v1/partner/profile", json=profile, headers=partner.headers)
        assert put.status_code == 200, put.text
        body = issue_body(
            title="Mail to the shop is down",
            description="Nothing reaches shop@ since we moved the domain",
            psa_type="EMAIL / MAIL FLOW",
        )
        body.pop("category")
        accepted = await client.post("/v1/issues", json=body, headers=partner.headers)
        assert accepted.status_code == 202, accepted.text
        view = await routed_view(client, partner, accepted.json()["id"], stack)

    decision = view["classification"]
    assert (decision["category"], decision["category_source"]) == ("configuration", "psa_type")
    assert decision["outcome"] == "partner_resolves"
    assert "Category from the PSA ticket type 'EMAIL / MAIL FLOW'" in decision["reasons"]
    assert view["psa_type"] == "EMAIL / MAIL FLOW"
    assert await scalar(engine, "SELECT count(*) FROM microsoft_requests") == 0
