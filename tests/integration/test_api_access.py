"""Who may do what: every role against every endpoint, and two partners that never see each other.

One partner holds a key per role plus one of each resource; a second partner holds its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services import admin
from shared.db.engine import create_session_factory
from shared.db.models import MicrosoftRequest, MicrosoftRequestIssue, WebhookDelivery
from shared.db.uow import UnitOfWorkFactory
from shared.vocabulary import Role
from tests.support.factories import issue_body, seed_partner

ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN_AGENT})


@dataclass
class Tenant:
    """A partner, a key per role, and one resource of each kind, created by its admin."""

    partner_id: uuid.UUID
    keys: dict[Role, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def make_tenant(api: httpx.AsyncClient, database_url: str, uows: UnitOfWorkFactory) -> Tenant:
    seeded = await seed_partner(database_url)
    tenant = Tenant(seeded.id, {Role.ADMIN_AGENT: seeded.api_key})
    for role in Role:
        if role is not Role.ADMIN_AGENT:
            key = await admin.create_key(uows, partner_id=seeded.id, role=role, pepper="")
            tenant.keys[role] = key.plaintext
    admin_headers = tenant.headers(Role.ADMIN_AGENT)

    async def made(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201, 202), response.text
        body: dict[str, Any] = response.json()
        return body

    issue = await made(await api.post("/v1/issues", json=issue_body(), headers=admin_headers))
    billing = await made(
        await api.post(
            "/v1/issues",
            json=issue_body(category="billing", title="Invoice too high"),
            headers=admin_headers,
        )
    )
    customer = await made(
        await api.post(
            "/v1/customers",
            json={"tenant_id": str(uuid.uuid4()), "name": "Fabrikam"},
            headers=admin_headers,
        )
    )
    webhook = await made(
        await api.post(
            "/v1/webhooks", json={"url": "https://20.190.128.10/hooks"}, headers=admin_headers
        )
    )
    await made(
        await api.put(
            "/v1/health/incidents/EX100",
            json={"title": "Mail delayed", "service": "Exchange Online"},
            headers=admin_headers,
        )
    )
    request_id, delivery_id = uuid.uuid4(), f"msg_{uuid.uuid4().hex}"
    async with uows() as uow:
        uow.session.add(
            MicrosoftRequest(
                id=request_id,
                partner_id=seeded.id,
                dedupe_key=f"issue:{issue['id']}",
                title="t",
                description="d",
                severity="moderate",
                vehicle="partner_cloud_support",
            )
        )
        uow.session.add(
            MicrosoftRequestIssue(request_id=request_id, issue_id=uuid.UUID(issue["id"]))
        )
        uow.session.add(
            WebhookDelivery(
                id=delivery_id,
                subscription_id=uuid.UUID(webhook["id"]),
                partner_id=seeded.id,
                event_id=str(uuid.uuid4()),
                event_type="issue.escalated_to_microsoft",
                body="{}",
                status="failed",
            )
        )
        await uow.commit()
    tenant.ids = {
        "issue": issue["id"],
        "billing_issue": billing["id"],
        "customer": customer["id"],
        "webhook": webhook["id"],
        "request": str(request_id),
        "delivery": delivery_id,
    }
    return tenant


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    allowed: frozenset[Role]
    body: Callable[[], Any] | None = None
    ok: int = 200
    # Roles that pass the role check but may not see this resource's category: 404.
    hidden_from: frozenset[Role] = frozenset()


def _profile() -> dict[str, Any]:
    return {"csp_model": "direct_bill", "support_vehicles": ["partner_cloud_support"]}


FILERS = frozenset({Role.ADMIN_AGENT, Role.HELPDESK_AGENT, Role.BILLING_ADMIN, Role.SALES_AGENT})
CATEGORY_BOUND = frozenset({Role.BILLING_ADMIN, Role.SALES_AGENT})
CALLS = [
    Call(
        "file a bug",
        "POST",
        "/v1/issues",
        ADMIN | {Role.HELPDESK_AGENT},
        lambda: issue_body(category="bug"),
        202,
    ),
    Call(
        "file a billing issue",
        "POST",
        "/v1/issues",
        ADMIN | {Role.HELPDESK_AGENT, Role.BILLING_ADMIN},
        lambda: issue_body(category="billing"),
        202,
    ),
    Call(
        "file a subscription issue",
        "POST",
        "/v1/issues",
        ADMIN | {Role.HELPDESK_AGENT, Role.SALES_AGENT},
        lambda: issue_body(category="subscription"),
        202,
    ),
    Call("list issues", "GET", "/v1/issues", ALL),
    Call("read an issue", "GET", "/v1/issues/{issue}", ALL, hidden_from=CATEGORY_BOUND),
    Call(
        "read a billing issue",
        "GET",
        "/v1/issues/{billing_issue}",
        ALL,
        hidden_from=frozenset({Role.SALES_AGENT}),
    ),
    Call(
        "note an issue",
        "PATCH",
        "/v1/issues/{issue}",
        FILERS,
        lambda: {"note": "customer called"},
        hidden_from=CATEGORY_BOUND,
    ),
    Call(
        "add a customer",
        "POST",
        "/v1/customers",
        ADMIN | {Role.HELPDESK_AGENT, Role.SALES_AGENT},
        lambda: {"tenant_id": str(uuid.uuid4()), "name": "Contoso"},
        201,
    ),
    Call("list customers", "GET", "/v1/customers", ALL),
    Call("read a customer", "GET", "/v1/customers/{customer}", ALL),
    Call("read the profile", "GET", "/v1/partner/profile", ALL),
    Call("replace the profile", "PUT", "/v1/partner/profile", ADMIN, _profile),
    Call(
        "subscribe",
        "POST",
        "/v1/webhooks",
        ADMIN,
        lambda: {"url": "https://20.190.128.11/hooks"},
        201,
    ),
    Call("list webhooks", "GET", "/v1/webhooks", ADMIN | {Role.READER}),
    Call(
        "list deliveries",
        "GET",
        "/v1/webhooks/{webhook}/deliveries",
        ADMIN | {Role.READER},
    ),
    Call(
        "redeliver",
        "POST",
        "/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver",
        ADMIN,
        ok=202,
    ),
    Call("rotate a secret", "POST", "/v1/webhooks/{webhook}/rotate-secret", ADMIN),
    Call("enable a webhook", "POST", "/v1/webhooks/{webhook}/enable", ADMIN),
    Call(
        "redeliver in bulk",
        "POST",
        "/v1/webhooks/{webhook}/deliveries/redeliver",
        ADMIN,
        lambda: {"status": "failed"},
        202,
    ),
    Call(
        "record an incident",
        "PUT",
        "/v1/health/incidents/EX200",
        ADMIN | {Role.HELPDESK_AGENT},
        lambda: {"title": "Down", "service": "Microsoft Teams"},
    ),
    Call("list incidents", "GET", "/v1/health/incidents", ALL),
    Call(
        "list Microsoft requests",
        "GET",
        "/v1/microsoft-requests",
        ADMIN | {Role.HELPDESK_AGENT, Role.READER},
    ),
    Call(
        "read a Microsoft request",
        "GET",
        "/v1/microsoft-requests/{request}",
        ADMIN | {Role.HELPDESK_AGENT, Role.READER},
    ),
    Call(
        "record Microsoft's number",
        "PATCH",
        "/v1/microsoft-requests/{request}",
        ADMIN,
        lambda: {"note": "called Microsoft"},
    ),
    Call("read the stats", "GET", "/v1/stats", ADMIN | {Role.HELPDESK_AGENT, Role.READER}),
    Call("read the ops panel", "GET", "/ops/panel", ADMIN | {Role.HELPDESK_AGENT, Role.READER}),
    # Last: it ends the subscription the other calls use.
    Call("unsubscribe", "DELETE", "/v1/webhooks/{webhook}", ADMIN, ok=204),
]


@pytest.fixture
def uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


@pytest.fixture
async def two(
    api: httpx.AsyncClient, database_url: str, uows: UnitOfWorkFactory
) -> tuple[Tenant, Tenant]:
    return (
        await make_tenant(api, database_url, uows),
        await make_tenant(api, database_url, uows),
    )


async def send(
    api: httpx.AsyncClient, call: Call, tenant: Tenant, role: Role, ids: dict[str, str]
) -> httpx.Response:
    return await api.request(
        call.method,
        call.path.format(**ids),
        json=call.body() if call.body else None,
        headers=tenant.headers(role),
    )


async def test_every_role_gets_exactly_what_its_role_allows_on_every_endpoint(
    api: httpx.AsyncClient, two: tuple[Tenant, Tenant]
) -> None:
    mine, _ = two
    wrong = []
    for call in CALLS:
        for role in Role:
            response = await send(api, call, mine, role, mine.ids)
            if role not in call.allowed:
                expected = 403
            elif role in call.hidden_from:
                expected = 404
            else:
                expected = call.ok
            if response.status_code != expected:
                wrong.append(f"{call.name} as {role.value}: {response.status_code} != {expected}")
            elif expected >= 400:
                assert response.headers["content-type"] == "application/problem+json"
    assert not wrong, "\n".join(wrong)


async def test_another_partners_resources_answer_exactly_like_absent_ones(
    api: httpx.AsyncClient, two: tuple[Tenant, Tenant]
) -> None:
    """Every path with an id, with the other partner's id and with a random one, as admin."""
    mine, theirs = two
    random_ids = {
        name: (f"msg_{uuid.uuid4().hex}" if name == "delivery" else str(uuid.uuid4()))
        for name in theirs.ids
    }
    differences = []
    for call in CALLS:
        if "{" not in call.path:
            continue
        foreign = await send(api, call, mine, Role.ADMIN_AGENT, theirs.ids)
        absent = await send(api, call, mine, Role.ADMIN_AGENT, random_ids)
        if foreign.status_code != 404 or absent.status_code != 404:
            differences.append(f"{call.name}: {foreign.status_code} / {absent.status_code}")
        foreign_shape = {k for k in foreign.json() if k != "detail"}
        absent_shape = {k for k in absent.json() if k != "detail"}
        if foreign_shape != absent_shape:
            differences.append(f"{call.name}: {foreign_shape} vs {absent_shape}")
    assert not differences, "\n".join(differences)


async def test_lists_and_writes_stay_inside_the_partner(
    api: httpx.AsyncClient, two: tuple[Tenant, Tenant]
) -> None:
    mine, theirs = two
    admin_headers = mine.headers(Role.ADMIN_AGENT)

    async def ids(path: str, key: str = "items") -> set[str]:
        body = (await api.get(path, headers=admin_headers)).json()
        items = body if isinstance(body, list) else body[key]
        return {item["id"] for item in items}

    assert theirs.ids["issue"] not in await ids("/v1/issues")
    assert mine.ids["issue"] in await ids("/v1/issues")
    assert theirs.ids["customer"] not in await ids("/v1/customers")
    assert theirs.ids["webhook"] not in await ids("/v1/webhooks")
    assert theirs.ids["request"] not in await ids("/v1/microsoft-requests")

    # The same external reference and tenant id are independent per partner.
    their_issue = (
        await api.get(f"/v1/issues/{theirs.ids['issue']}", headers=theirs.headers(Role.ADMIN_AGENT))
    ).json()
    same_ref = await api.post(
        "/v1/issues",
        json=issue_body(external_ref=their_issue["external_ref"]),
        headers=admin_headers,
    )
    assert same_ref.status_code == 202, "another partner's ticket number is not a duplicate"

    # An incident id recorded by both partners stays two incidents.
    await api.put(
        "/v1/health/incidents/EX100",
        json={"title": "Mine", "service": "Exchange Online"},
        headers=admin_headers,
    )
    theirs_listed = (
        await api.get("/v1/health/incidents", headers=theirs.headers(Role.ADMIN_AGENT))
    ).json()
    assert [i["title"] for i in theirs_listed if i["id"] == "EX100"] == ["Mail delayed"]

    # A customer id of another partner cannot be attached to an issue.
    borrowed = await api.post(
        "/v1/issues",
        json=issue_body(customer_id=theirs.ids["customer"]),
        headers=admin_headers,
    )
    assert borrowed.status_code == 422
    # Idempotency keys are per partner: the same key used by both is two requests.
    key = {"Idempotency-Key": "shared-key-1"}
    first = await api.post("/v1/issues", json=issue_body(), headers={**admin_headers, **key})
    second = await api.post(
        "/v1/issues",
        json=issue_body(),
        headers={**theirs.headers(Role.ADMIN_AGENT), **key},
    )
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] != second.json()["id"]
