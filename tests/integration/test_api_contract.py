"""The intake contract a PSA integrator relies on: severity mapping, lifecycle, lists, customers,
partner profile and idempotency, on a real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.base import table_of
from shared.db.models import Classification, Issue
from shared.vocabulary import Role
from tests.support.factories import SeededPartner, issue_body, rows, scalar, seed_partner


async def accepted(api: httpx.AsyncClient, partner: SeededPartner, **fields: Any) -> str:
    response = await api.post("/v1/issues", json=issue_body(**fields), headers=partner.headers)
    assert response.status_code == 202, response.text
    issue_id: str = response.json()["id"]
    return issue_id


async def view(api: httpx.AsyncClient, partner: SeededPartner, issue_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/issues/{issue_id}", headers=partner.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("fields", "severity"),
    [
        ({"priority": "Priority 1 - Emergency Response"}, "critical"),
        ({"priority": "Priority 3 - Normal Response"}, "minimal"),
        ({"priority": "High"}, "moderate"),
        ({"priority": "p2"}, "moderate"),
        ({"impact": "High", "urgency": "HIGH"}, "critical"),
        ({"impact": "1 - High", "urgency": "3 - Low"}, "moderate"),
        ({"impact": "Low", "urgency": "Medium"}, "minimal"),
        ({"priority": "P1", "severity": "minimal"}, "minimal"),
        ({}, "moderate"),
    ],
)
async def test_a_psa_priority_or_impact_and_urgency_becomes_a_severity(
    api: httpx.AsyncClient, database_url: str, fields: dict[str, Any], severity: str
) -> None:
    partner = await seed_partner(database_url)
    body = issue_body(**fields)
    if "severity" not in fields:
        body.pop("severity")
    response = await api.post("/v1/issues", json=body, headers=partner.headers)
    assert response.status_code == 202, response.text
    issue = await view(api, partner, response.json()["id"])
    assert issue["severity"] == severity
    assert "severity" in issue["timeline"][0]["detail"]


async def test_an_unknown_priority_is_refused_with_the_known_ones(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    body = issue_body(priority="Whenever")
    body.pop("severity")
    response = await api.post("/v1/issues", json=body, headers=partner.headers)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "body.priority"
    assert "emergency" in error["message"]
    assert await scalar(engine, "SELECT count(*) FROM issues") == 0


async def test_a_psa_resolves_then_closes_and_cannot_reopen(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner)
    url = f"/v1/issues/{issue_id}"

    noted = await api.patch(url, json={"note": "Customer sent logs."}, headers=partner.headers)
    assert noted.status_code == 200, noted.text
    assert noted.json()["timeline"][-1] == {
        **noted.json()["timeline"][-1],
        "status": "received",
        "detail": "Customer sent logs.",
    }
    resolved = await api.patch(
        url, json={"status": "resolved", "note": "Fixed by a reboot."}, headers=partner.headers
    )
    assert resolved.json()["status"] == "resolved"
    again = await api.patch(url, json={"status": "resolved"}, headers=partner.headers)
    assert again.status_code == 200, "setting the status it has changes nothing"
    closed = await api.patch(url, json={"status": "closed"}, headers=partner.headers)
    assert closed.json()["status"] == "closed"

    reopened = await api.patch(url, json={"status": "resolved"}, headers=partner.headers)
    assert reopened.status_code == 409
    problem = reopened.json()
    assert problem["current_status"] == "closed"
    assert problem["allowed_statuses"] == []
    assert "final" in problem["detail"]

    steps = [s["status"] for s in (await view(api, partner, issue_id))["timeline"]]
    assert steps == ["received", "received", "resolved", "closed"]
    updates = await scalar(
        engine,
        "SELECT count(*) FROM outbox WHERE event_type = 'csp.issue.updated'",
    )
    assert updates == 3, "the note and both transitions went out on issues.updated"


@pytest.mark.parametrize("status", ["routed", "classified", "received", "reopened"])
async def test_only_resolved_and_closed_are_a_psas_to_set(
    api: httpx.AsyncClient, database_url: str, status: str
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner)
    response = await api.patch(
        f"/v1/issues/{issue_id}", json={"status": status}, headers=partner.headers
    )
    assert response.status_code == 422


async def routed_as(
    engine: AsyncEngine,
    issue_id: str,
    outcome: str,
    category: str | None = None,
    source: str = "inferred",
) -> None:
    """The issue as the classifier and notifier would leave it: routed, with ``outcome``."""
    decision = {
        "id": uuid.uuid4(),
        "issue_id": uuid.UUID(issue_id),
        "category": category,
        "category_source": source,
        "outcome": outcome,
        "reasons": ["What kind of problem is it?"],
        "rule_id": "ask-for-category",
        "confidence": 0.0,
        "created_at": datetime.now(UTC),
    }
    async with engine.begin() as connection:
        await connection.execute(insert(table_of(Classification)), [decision])
        await connection.execute(
            update(table_of(Issue))
            .where(table_of(Issue).c.id == uuid.UUID(issue_id))
            .values(status="routed")
        )


async def test_a_category_answers_needs_information_and_has_the_issue_classified_again(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner, category=None, title="Hola", description="Llamadme")
    await routed_as(engine, issue_id, "needs_information")
    url = f"/v1/issues/{issue_id}"

    answered = await api.patch(
        url, json={"category": "bug", "note": "Teams crashes on start"}, headers=partner.headers
    )

    assert answered.status_code == 200, answered.text
    issue = answered.json()
    assert (issue["status"], issue["category"], issue["classification"]) == (
        "received",
        "bug",
        None,
    )
    assert issue["timeline"][-1]["status"] == "received"
    assert issue["timeline"][-1]["detail"] == (
        "category bug given by the PSA (Teams crashes on start); to be classified again"
    )
    received = await rows(
        engine,
        "SELECT value FROM outbox WHERE event_type = 'csp.issue.received' ORDER BY id",
    )
    assert len(received) == 2, "the first announcement and the new one"
    again = orjson.loads(received[-1][0])
    assert again["data"]["category"] == "bug"
    assert again["data"]["issue_id"] == issue_id
    assert again["id"] != orjson.loads(received[0][0])["id"]
    twice = await api.patch(url, json={"category": "bug"}, headers=partner.headers)
    assert twice.status_code == 409, "it is no longer an issue that needs information"
    assert twice.json()["current_status"] == "received"


async def test_a_new_description_answers_needs_information_and_goes_to_the_classifier(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner, category=None, title="Hola", description="Llamadme")
    await routed_as(engine, issue_id, "needs_information")
    text = "Nadie puede abrir Teams desde las 9:00"

    answered = await api.patch(
        f"/v1/issues/{issue_id}", json={"description": text}, headers=partner.headers
    )

    assert answered.status_code == 200, answered.text
    assert (answered.json()["status"], answered.json()["category"]) == ("received", None)
    assert answered.json()["timeline"][-1]["detail"] == (
        "description given by the PSA; to be classified again"
    )
    [[value]] = await rows(
        engine,
        "SELECT value FROM outbox WHERE event_type = 'csp.issue.received' ORDER BY id DESC LIMIT 1",
    )
    assert orjson.loads(value)["data"]["description"] == text
    assert orjson.loads(value)["data"]["category"] is None


async def test_a_new_ticket_type_has_the_issue_classified_again_with_it(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(
        api, partner, category=None, title="Hola", description="Llamadme", psa_type="Other"
    )
    await routed_as(engine, issue_id, "needs_information")

    answered = await api.patch(
        f"/v1/issues/{issue_id}", json={"psa_type": " Email / Mail flow "}, headers=partner.headers
    )

    assert answered.status_code == 200, answered.text
    issue = answered.json()
    assert (issue["status"], issue["psa_type"]) == ("received", "Email / Mail flow")
    assert issue["timeline"][-1]["detail"] == (
        "ticket type 'Email / Mail flow' given by the PSA; to be classified again"
    )
    [[value]] = await rows(
        engine,
        "SELECT value FROM outbox WHERE event_type = 'csp.issue.received' ORDER BY id DESC LIMIT 1",
    )
    assert orjson.loads(value)["data"]["psa_type"] == "Email / Mail flow"
    both = await api.patch(
        f"/v1/issues/{issue_id}",
        json={"psa_type": "Billing", "status": "closed"},
        headers=partner.headers,
    )
    assert both.status_code == 422, "a ticket type classifies again: not with a status"


@pytest.mark.parametrize(
    ("outcome", "source"),
    [
        ("partner_resolves", "inferred"),  # an outage taken for a how-to question
        ("partner_resolves", "given"),  # the PSA's own category was wrong
        ("linked_to_incident", "given"),  # the incident is resolved, the problem is not
    ],
)
async def test_a_category_classifies_again_an_issue_routed_without_a_request_or_hand_off(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine, outcome: str, source: str
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner, category=None)
    await routed_as(engine, issue_id, outcome, category="how_to", source=source)
    corrected = await api.patch(
        f"/v1/issues/{issue_id}", json={"category": "service_unavailable"}, headers=partner.headers
    )
    assert corrected.status_code == 200, corrected.text
    assert (corrected.json()["status"], corrected.json()["category"]) == (
        "received",
        "service_unavailable",
    )


async def test_a_key_bound_to_a_category_gives_no_other(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url, role=Role.BILLING_ADMIN)
    issue_id = await accepted(api, partner, category="billing")
    await routed_as(engine, issue_id, "partner_resolves", category="billing", source="given")
    url = f"/v1/issues/{issue_id}"
    refused = await api.patch(url, json={"category": "bug"}, headers=partner.headers)
    assert refused.status_code == 403, refused.text
    told = await api.patch(url, json={"description": "Charged twice"}, headers=partner.headers)
    assert told.status_code == 200, told.text
    assert told.json()["category"] == "billing"


@pytest.mark.parametrize(
    ("outcome", "source", "then", "detail"),
    [
        (None, "given", None, "this one is received."),
        ("escalated_to_microsoft", "given", None, "routed, escalated_to_microsoft."),
        ("routed_to_indirect_provider", "inferred", None, "routed, routed_to_indirect_provider."),
        ("needs_information", "inferred", "resolved", "This issue is resolved"),
    ],
)
async def test_only_a_routed_issue_with_nothing_filed_or_handed_off_takes_a_category(
    api: httpx.AsyncClient,
    database_url: str,
    engine: AsyncEngine,
    outcome: str | None,
    source: str,
    then: str | None,
    detail: str,
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner)
    if outcome is not None:
        await routed_as(engine, issue_id, outcome, category="bug", source=source)
    url = f"/v1/issues/{issue_id}"
    if then is not None:
        moved = await api.patch(url, json={"status": then}, headers=partner.headers)
        assert moved.status_code == 200, moved.text

    refused = await api.patch(url, json={"category": "bug"}, headers=partner.headers)

    assert refused.status_code == 409, refused.text
    assert detail in refused.json()["detail"]
    assert (
        await scalar(engine, "SELECT count(*) FROM outbox WHERE event_type = 'csp.issue.received'")
        == 1
    )


@pytest.mark.parametrize("answer", [{"category": "bug"}, {"description": "Teams crashes"}])
async def test_a_category_or_description_and_a_status_together_are_refused(
    api: httpx.AsyncClient, database_url: str, answer: dict[str, str]
) -> None:
    partner = await seed_partner(database_url)
    issue_id = await accepted(api, partner)
    response = await api.patch(
        f"/v1/issues/{issue_id}",
        json={**answer, "status": "resolved"},
        headers=partner.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_issues_are_listed_newest_first_with_filters_and_cursor(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    teams = [await accepted(api, partner) for _ in range(3)]
    exchange = await accepted(api, partner, service="Exchange Online")
    await api.patch(f"/v1/issues/{teams[0]}", json={"status": "closed"}, headers=partner.headers)

    async def listed(**params: Any) -> dict[str, Any]:
        response = await api.get("/v1/issues", params=params, headers=partner.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = await listed()
    assert [i["id"] for i in everything["items"]] == [exchange, *reversed(teams)]
    assert [i["id"] for i in (await listed(service="exchange ONLINE"))["items"]] == [exchange]
    assert [i["id"] for i in (await listed(status="closed"))["items"]] == [teams[0]]

    pages: list[str] = []
    cursor = None
    while True:
        page = await listed(limit=1, **({"cursor": cursor} if cursor else {}))
        pages += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [i["id"] for i in everything["items"]]

    created = await scalar(
        engine,
        "SELECT created_at FROM issues WHERE id = :id",
        id=exchange if engine.dialect.name == "postgresql" else uuid.UUID(exchange).hex,
    )
    moment = created if isinstance(created, datetime) else datetime.fromisoformat(created)
    before = (moment.replace(tzinfo=moment.tzinfo or UTC) - timedelta(milliseconds=1)).isoformat()
    assert [i["id"] for i in (await listed(created_after=before))["items"]] == [exchange]
    changed = [i["id"] for i in (await listed(updated_after=before))["items"]]
    assert changed == [exchange, teams[0]], "closed after the last was filed"
    naive = await api.get(
        "/v1/issues", params={"created_after": "2026-11-21T09:00:00"}, headers=partner.headers
    )
    assert naive.status_code == 422, "a time without an offset is ambiguous"
    assert (await listed(outcome="escalated_to_microsoft"))["items"] == []
    bad = await api.get("/v1/issues", params={"cursor": "bm9wZQ=="}, headers=partner.headers)
    assert bad.status_code == 422


async def test_customers_carry_a_validated_tenant_id_and_issues_find_them_by_it(
    api: httpx.AsyncClient, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    tenant = str(uuid.uuid4())
    body = {"tenant_id": tenant, "name": "Fabrikam", "region": "westeurope", "locale": "de"}
    created = await api.post("/v1/customers", json=body, headers=partner.headers)
    assert created.status_code == 201, created.text
    customer = created.json()
    assert created.headers["location"] == f"/v1/customers/{customer['id']}"

    again = await api.post("/v1/customers", json=body, headers=partner.headers)
    assert again.status_code == 409
    assert again.json()["customer_id"] == customer["id"]
    for wrong in ("not-a-guid", "00000000-0000-0000-0000-000000000000", 42):
        refused = await api.post(
            "/v1/customers", json={**body, "tenant_id": wrong}, headers=partner.headers
        )
        assert refused.status_code == 422, wrong
        assert refused.json()["errors"][0]["field"] == "body.tenant_id"

    listed = await api.get("/v1/customers", params={"tenant_id": tenant}, headers=partner.headers)
    assert [c["id"] for c in listed.json()["items"]] == [customer["id"]]

    issue_id = await accepted(api, partner, tenant_id=tenant)
    issue = await view(api, partner, issue_id)
    assert issue["customer_id"] == customer["id"]
    assert issue["region"] == "westeurope", "the customer's region when the issue has none"


async def test_an_accept_with_an_idempotency_key_finds_its_customer_too(
    api: httpx.AsyncClient, database_url: str
) -> None:
    partner, other = await seed_partner(database_url), await seed_partner(database_url)
    body = {"tenant_id": str(uuid.uuid4()), "name": "Fabrikam", "region": "westeurope"}
    created = await api.post("/v1/customers", json=body, headers=partner.headers)
    customer_id = created.json()["id"]
    for named in ({"customer_id": customer_id}, {"tenant_id": body["tenant_id"]}):
        response = await api.post(
            "/v1/issues",
            json=issue_body(**named),
            headers={**partner.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 202, response.text
        issue = await view(api, partner, response.json()["id"])
        assert (issue["customer_id"], issue["region"]) == (customer_id, "westeurope"), named
    borrowed = await api.post(
        "/v1/issues",
        json=issue_body(customer_id=customer_id),
        headers={**other.headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert borrowed.status_code == 422
    assert borrowed.json()["errors"][0]["field"] == "body.customer_id"


PROFILE: dict[str, Any] = {
    "csp_model": "indirect_reseller",
    "indirect_provider": {"name": "Contoso Distribution", "email": "escalations@contoso.test"},
    "support_vehicles": ["partner_cloud_support"],
    "locale": "es",
    "support_offer": {
        "support_types": ["break_fix", "billing"],
        "hours": {
            "timezone": "Europe/Madrid",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat"],
            "start": "08:00",
            "end": "18:00",
        },
        "contact_methods": [{"kind": "phone", "value": "+34 91 123 45 67"}],
        "prices": [
            {"item": "Incidencia", "amount": "95.00", "currency": "EUR", "unit": "per_incident"}
        ],
    },
    "correlation": {"enabled": True, "min_tenants": 4, "window_min": 20},
}


async def test_the_profile_tells_the_support_offer_in_the_partners_language(
    api: httpx.AsyncClient, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    put = await api.put("/v1/partner/profile", json=PROFILE, headers=partner.headers)
    assert put.status_code == 200, put.text
    profile = put.json()
    assert profile["correlation"] == {"enabled": True, "min_tenants": 4, "window_min": 20.0}
    assert profile["support_offer_text"].startswith("Soporte: resolución de averías, facturación")
    assert "Horario: lun\u2013sáb 08:00\u201318:00 (Europe/Madrid)" in profile["support_offer_text"]

    expected = {
        "en": "Hours: Mon\u2013Sat 08:00\u201318:00 (Europe/Madrid)",
        "de": "Zeiten: Mo\u2013Sa 08:00\u201318:00 (Europe/Madrid)",
        "fr": "Horaires: lun\u2013sam 08:00\u201318:00 (Europe/Madrid)",
    }
    for locale, sentence in expected.items():
        got = await api.get(
            "/v1/partner/profile", params={"locale": locale}, headers=partner.headers
        )
        assert sentence in got.json()["support_offer_text"], got.json()["support_offer_text"]
    assert (
        "95.00 EUR por incidencia"
        in (await api.get("/v1/partner/profile", headers=partner.headers)).json()[
            "support_offer_text"
        ]
    )


async def test_the_profile_keeps_the_psa_ticket_types_and_issues_keep_theirs(
    api: httpx.AsyncClient, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    types = {"Email / Mail flow": "configuration", "Billing > Invoice": "billing"}
    put = await api.put(
        "/v1/partner/profile", json={**PROFILE, "psa_types": types}, headers=partner.headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["psa_types"] == types
    got = await api.get("/v1/partner/profile", headers=partner.headers)
    assert got.json()["psa_types"] == types

    issue_id = await accepted(api, partner, psa_type=" Email / Mail flow ")
    view = await api.get(f"/v1/issues/{issue_id}", headers=partner.headers)
    assert view.json()["psa_type"] == "Email / Mail flow"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"indirect_provider": None}, "body"),
        ({"csp_model": "direct_bill"}, "body"),
        ({"locale": "it"}, "body.locale"),
        ({"correlation": {"min_tenants": "3"}}, "body.correlation.min_tenants"),
        (
            {"support_offer": {"hours": {**PROFILE["support_offer"]["hours"], "timezone": "Mars"}}},
            "body.support_offer.hours.timezone",
        ),
        (
            {"support_offer": {"hours": {**PROFILE["support_offer"]["hours"], "end": "07:00"}}},
            "body.support_offer.hours",
        ),
        ({"psa_types": {"Billing": "invoices"}}, "body.psa_types.Billing"),
        ({"psa_types": {"Billing": "billing", "BILLING": "commercial"}}, "body"),
        ({"psa_types": {"T" * 201: "billing"}}, f"body.psa_types.{'T' * 201}.[key]"),
    ],
)
async def test_a_profile_that_does_not_add_up_is_refused(
    api: httpx.AsyncClient, database_url: str, change: dict[str, Any], field: str
) -> None:
    partner = await seed_partner(database_url)
    response = await api.put(
        "/v1/partner/profile", json={**PROFILE, **change}, headers=partner.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_an_idempotency_key_replays_its_answer_for_24_hours_on_every_post(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    posts = [
        ("/v1/issues", issue_body(), "title"),
        ("/v1/customers", {"tenant_id": str(uuid.uuid4()), "name": "Fabrikam"}, "name"),
    ]
    for path, body, field in posts:
        headers = {**partner.headers, "Idempotency-Key": f"key-{path}"}
        first = await api.post(path, json=body, headers=headers)
        replay = await api.post(path, json=body, headers=headers)
        assert first.status_code in (201, 202), first.text
        assert (replay.status_code, replay.json()) == (first.status_code, first.json())
        assert replay.headers["location"] == first.headers["location"]
        assert replay.headers["idempotent-replayed"] == "true"
        other = await api.post(path, json={**body, field: "other"}, headers=headers)
        assert other.status_code == 409
    assert await scalar(engine, "SELECT count(*) FROM issues") == 1
    assert await scalar(engine, "SELECT count(*) FROM customers") == 1

    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE idempotency_keys SET created_at = :old"),
            {"old": datetime.now(UTC) - timedelta(hours=25)},
        )
    body = issue_body()
    headers = {**partner.headers, "Idempotency-Key": "key-/v1/issues"}
    after = await api.post("/v1/issues", json=body, headers=headers)
    assert after.status_code == 202, "a key older than 24 hours is forgotten"
    assert "idempotent-replayed" not in after.headers


@pytest.mark.parametrize("key", [b"k" * 256, b"has space", "caf\u00e9".encode()])
async def test_a_malformed_idempotency_key_is_refused_on_every_post_and_writes_nothing(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine, key: bytes
) -> None:
    partner = await seed_partner(database_url)
    posts = [
        ("/v1/issues", issue_body()),
        ("/v1/customers", {"tenant_id": str(uuid.uuid4()), "name": "Fabrikam"}),
    ]
    # As bytes: a header that is not ASCII cannot be given as text.
    authorized = {name.encode(): value.encode() for name, value in partner.headers.items()}
    for path, body in posts:
        headers = {**authorized, b"idempotency-key": key}
        refused = await api.post(path, json=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["header.idempotency-key"]
        # A caller without a key hears 401 first, whatever else is wrong with the request.
        anonymous = await api.post(path, json=body, headers={b"idempotency-key": key})
        assert anonymous.status_code == 401, anonymous.text
    assert await scalar(engine, "SELECT count(*) FROM issues") == 0
    assert await scalar(engine, "SELECT count(*) FROM customers") == 0
    assert await scalar(engine, "SELECT count(*) FROM idempotency_keys") == 0


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(copies=st.integers(min_value=2, max_value=8), key=st.uuids())
async def test_concurrent_identical_posts_with_one_key_create_one_issue(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine, copies: int, key: uuid.UUID
) -> None:
    partner = await seed_partner(database_url)
    body = issue_body()
    headers = {**partner.headers, "Idempotency-Key": str(key)}
    answers = await asyncio.gather(
        *(api.post("/v1/issues", json=body, headers=headers) for _ in range(copies))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    created = await scalar(
        engine,
        "SELECT count(*) FROM issues WHERE external_ref = :ref",
        ref=body["external_ref"],
    )
    assert created == 1
