"""``GET /v1/stats``: counts over a window, the routing backlog, the latest routed; per partner."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services import admin
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import Classification, Issue, IssueEvent
from shared.db.uow import UnitOfWorkFactory
from shared.vocabulary import Role
from tests.support.factories import SeededPartner, issue_body, seed_partner


@pytest.fixture
def uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


async def file(api: httpx.AsyncClient, partner: SeededPartner, **body: Any) -> uuid.UUID:
    answer = await api.post("/v1/issues", json=issue_body(**body), headers=partner.headers)
    assert answer.status_code == 202, answer.text
    return uuid.UUID(answer.json()["id"])


async def route(
    uows: UnitOfWorkFactory,
    issue_id: uuid.UUID,
    *,
    outcome: str,
    vehicle: str | None = None,
    language: str = "en",
    after: timedelta = timedelta(seconds=1),
) -> None:
    """What the classifier and notifier leave behind for a routed issue."""
    async with uows() as uow:
        issue = await uow.session.get(Issue, issue_id)
        assert issue is not None
        issue.status = "routed"
        uow.session.add(
            Classification(
                issue_id=issue_id,
                category=issue.category,
                category_source="stated",
                outcome=outcome,
                vehicle=vehicle,
                rule_id="test",
                language=language,
            )
        )
        uow.session.add(IssueEvent(issue_id=issue_id, status="routed", at=issue.created_at + after))
        await uow.commit()


async def reader_headers(uows: UnitOfWorkFactory, partner: SeededPartner) -> dict[str, str]:
    key = await admin.create_key(uows, partner_id=partner.id, role=Role.READER, pepper="")
    return {"Authorization": f"Bearer {key.plaintext}"}


async def test_the_stats_count_the_window_the_backlog_and_the_latest_routed_of_one_partner(
    api: httpx.AsyncClient, database_url: str, uows: UnitOfWorkFactory
) -> None:
    mine, theirs = await seed_partner(database_url), await seed_partner(database_url)
    teams = await file(api, mine, service="Microsoft Teams", category="bug")
    invoice = await file(api, mine, service="Billing", category="billing")
    waiting = await file(api, mine, service="Exchange Online", category="bug")
    await file(api, theirs, service="SharePoint Online")
    old = await file(api, mine, service="Azure Virtual Machines", category="bug")
    # Routed times count from each filing, so Teams' lead must outlast any pause between filings.
    await route(
        uows, teams, outcome="escalated_to_microsoft", vehicle="partner_cloud_support",
        language="es", after=timedelta(minutes=5),
    )  # fmt: skip
    await route(uows, invoice, outcome="partner_resolves", language="de")
    async with uows() as uow:
        two_days_ago = utcnow() - timedelta(days=2)
        await uow.session.execute(
            update(Issue).where(Issue.id == old).values(created_at=two_days_ago)
        )
        await uow.commit()

    answer = await api.get("/v1/stats", headers=await reader_headers(uows, mine))
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert stats["window"] == "24h"
    assert stats["received"] == 3
    assert stats["by_status"] == {"received": 1, "routed": 2}
    assert stats["by_outcome"] == {"escalated_to_microsoft": 1, "none": 1, "partner_resolves": 1}
    assert stats["by_vehicle"] == {"partner_cloud_support": 1}
    assert stats["by_language"] == {"de": 1, "es": 1}
    assert stats["by_service"] == {"Billing": 1, "Exchange Online": 1, "Microsoft Teams": 1}
    assert stats["by_category"] == {"bug": 2, "billing": 1}
    unrouted = stats["unrouted"]
    assert unrouted["count"] == 2, "the backlog has no window: the two-day-old issue waits too"
    assert unrouted["oldest_issue_id"] == str(old)
    assert unrouted["oldest_status"] == "received"
    assert 2 * 86400 - 60 < unrouted["oldest_age_s"] < 2 * 86400 + 60
    recent = stats["recent_routed"]
    assert [r["id"] for r in recent] == [str(teams), str(invoice)]
    assert recent[0]["took_s"] == pytest.approx(300, abs=0.01)
    assert recent[0]["vehicle"] == "partner_cloud_support"
    assert str(waiting) not in {r["id"] for r in recent}

    week = (await api.get("/v1/stats?window=7d", headers=mine.headers)).json()
    assert week["received"] == 4
    theirs_stats = (await api.get("/v1/stats", headers=theirs.headers)).json()
    assert theirs_stats["received"] == 1
    assert theirs_stats["recent_routed"] == []


async def test_an_issue_routed_again_is_listed_once_at_its_latest_routing_and_not_meanwhile(
    api: httpx.AsyncClient, database_url: str, uows: UnitOfWorkFactory
) -> None:
    partner = await seed_partner(database_url)
    answered = await file(api, partner, service="Exchange Online", category="how_to")
    other = await file(api, partner, service="Microsoft Teams", category="how_to")
    await route(uows, answered, outcome="needs_information", after=timedelta(seconds=1))
    await route(uows, other, outcome="partner_resolves", after=timedelta(seconds=2))
    async with uows() as uow:  # the PSA's answer: back to received, the decision dropped
        await uow.session.execute(
            update(Issue).where(Issue.id == answered).values(status="received")
        )
        await uow.session.execute(delete(Classification).where(Classification.issue_id == answered))
        await uow.commit()

    def listed(stats: dict[str, Any]) -> list[tuple[str, str]]:
        return [(r["id"], r["outcome"]) for r in stats["recent_routed"]]

    headers = await reader_headers(uows, partner)
    meanwhile = (await api.get("/v1/stats", headers=headers)).json()
    assert listed(meanwhile) == [(str(other), "partner_resolves")]

    await route(uows, answered, outcome="partner_resolves", after=timedelta(seconds=3))
    stats = (await api.get("/v1/stats", headers=headers)).json()
    assert listed(stats) == [(str(answered), "partner_resolves"), (str(other), "partner_resolves")]
    assert stats["recent_routed"][0]["took_s"] == pytest.approx(3, abs=0.01)


@pytest.mark.parametrize("window", ["91d", "0h", "24", "1w", "-1h", "99999m"])
async def test_a_window_that_is_not_a_duration_up_to_90_days_is_a_422(
    api: httpx.AsyncClient, database_url: str, window: str
) -> None:
    partner = await seed_partner(database_url)
    answer = await api.get("/v1/stats", params={"window": window}, headers=partner.headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"].endswith("window")


async def test_the_ops_page_shell_needs_no_key_and_carries_no_data(
    api: httpx.AsyncClient, database_url: str
) -> None:
    partner = await seed_partner(database_url)
    await file(api, partner, service="Exchange Online <script>alert(1)</script>")
    page = await api.get("/ops")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'nonce-" in policy
    assert "Exchange Online" not in page.text
    panel = await api.get("/ops/panel", headers=partner.headers)
    assert panel.status_code == 200
    assert "Exchange Online &lt;script&gt;" in panel.text
    assert "<script>alert(1)</script>" not in panel.text
    assert (await api.get("/ops/panel")).status_code == 401
