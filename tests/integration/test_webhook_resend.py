"""Deliveries sent again: an endpoint a 410 disabled is enabled with what the disabling
stopped, and kept deliveries are requeued in bulk after a receiver outage, by its partner
(REST) or by the deployment's operators for every partner (``escalation webhooks``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services import admin_webhooks
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.vocabulary import WEBHOOK_NOT_SENT, Role
from tests.support.factories import SeededPartner, seed_partner, seed_webhook

GONE = "the endpoint answered 410 Gone"


async def _disabled(
    engine: AsyncEngine, partner: SeededPartner, *, url: str = "https://8.8.8.8/hooks"
) -> uuid.UUID:
    """A subscription as the dispatcher leaves it after a 410, with its deliveries: the one
    answered 410, one due since (not sent), one its receiver refused, one delivered."""
    deliveries: dict[str, dict[str, Any]] = {
        "gone": dict(status="failed", last_status_code=410, last_error="410 Gone"),
        "due": dict(status="failed", last_error=f"{WEBHOOK_NOT_SENT}{GONE}"),
        "refused": dict(status="failed", last_status_code=400),
        "delivered": dict(status="succeeded", last_status_code=204),
    }
    for columns in deliveries.values():
        columns["attempts"] = 3
    return await seed_webhook(engine, partner, deliveries, url=url, disabled_reason=GONE)


async def _statuses(engine: AsyncEngine, subscription_id: uuid.UUID) -> dict[str, str]:
    async with create_session_factory(engine)() as session:
        found = await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.status, WebhookDelivery.attempts).where(
                WebhookDelivery.subscription_id == subscription_id
            )
        )
        return {row.id.split("_")[1]: f"{row.status}/{row.attempts}" for row in found}


async def test_enabling_queues_again_what_the_410_stopped_and_nothing_else(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    hook = await _disabled(engine, partner)

    answer = await api.post(f"/v1/webhooks/{hook}/enable", headers=partner.headers)

    assert answer.status_code == 200, answer.text
    enabled = answer.json()
    assert enabled["enabled"] is True
    assert enabled["disabled_reason"] is None
    assert enabled["requeued"] == 2
    assert "secret" not in enabled
    assert await _statuses(engine, hook) == {
        "gone": "pending/0",
        "due": "pending/0",
        "refused": "failed/3",
        "delivered": "succeeded/3",
    }
    listed = {h["id"]: h for h in (await api.get("/v1/webhooks", headers=partner.headers)).json()}
    assert listed[str(hook)]["enabled"] is True

    again = await api.post(f"/v1/webhooks/{hook}/enable", headers=partner.headers)
    assert again.status_code == 200
    assert again.json()["requeued"] == 0, "an enabled endpoint is left as it is"


async def test_only_the_partners_admin_enables_and_a_refused_url_stays_disabled(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    hook = await _disabled(engine, partner)
    reader = await seed_partner(database_url, role=Role.READER)
    other = await seed_partner(database_url)

    read_only = await api.post(f"/v1/webhooks/{hook}/enable", headers=reader.headers)
    assert read_only.status_code == 403
    foreign = await api.post(f"/v1/webhooks/{hook}/enable", headers=other.headers)
    assert foreign.status_code == 404

    inside = await _disabled(engine, partner, url="http://127.0.0.1:9/hooks")
    refused = await api.post(f"/v1/webhooks/{inside}/enable", headers=partner.headers)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "private" in refused.json()["detail"]
    assert (await _statuses(engine, inside))["gone"] == "failed/3"

    deleted = await api.delete(f"/v1/webhooks/{hook}", headers=partner.headers)
    assert deleted.status_code == 204
    gone = await api.post(f"/v1/webhooks/{hook}/enable", headers=partner.headers)
    assert gone.status_code == 404


async def _kept(engine: AsyncEngine, partner: SeededPartner, statuses: list[str]) -> uuid.UUID:
    """An enabled subscription with one delivery per status, a minute apart, oldest first."""
    start = utcnow() - timedelta(hours=1)
    deliveries: dict[str, dict[str, Any]] = {
        f"{n}{status}": dict(status=status, attempts=21, created_at=start + timedelta(minutes=n))
        for n, status in enumerate(statuses)
    }
    return await seed_webhook(engine, partner, deliveries)


async def test_kept_deliveries_are_sent_again_oldest_first_a_limit_at_a_time(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    statuses = ["exhausted", "failed", "exhausted", "succeeded", "exhausted", "pending"]
    hook = await _kept(engine, partner, statuses)
    url = f"/v1/webhooks/{hook}/deliveries/redeliver"

    first = await api.post(url, json={"limit": 2}, headers=partner.headers)
    assert first.status_code == 202, first.text
    assert first.json() == {"requeued": 2}
    assert await _statuses(engine, hook) == {
        "0exhausted": "pending/0",
        "1failed": "failed/21",
        "2exhausted": "pending/0",
        "3succeeded": "succeeded/21",
        "4exhausted": "exhausted/21",
        "5pending": "pending/21",
    }
    rest = await api.post(url, json={"limit": 2}, headers=partner.headers)
    assert rest.json() == {"requeued": 1}, "fewer than the limit: none left"
    assert (await api.post(url, json={}, headers=partner.headers)).json() == {"requeued": 0}

    later = (utcnow() - timedelta(minutes=58, seconds=30)).isoformat()
    refused = await api.post(
        url, json={"status": "failed", "created_after": later}, headers=partner.headers
    )
    assert refused.json() == {"requeued": 0}, "the failed one is older than that"
    earlier = (utcnow() - timedelta(minutes=61)).isoformat()
    refused = await api.post(
        url, json={"status": "failed", "created_after": earlier}, headers=partner.headers
    )
    assert refused.json() == {"requeued": 1}
    assert (await _statuses(engine, hook))["1failed"] == "pending/0"


async def test_sending_again_is_refused_for_a_disabled_endpoint_or_a_bad_request(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    disabled = await _disabled(engine, partner)
    answer = await api.post(
        f"/v1/webhooks/{disabled}/deliveries/redeliver", json={}, headers=partner.headers
    )
    assert answer.status_code == 409
    assert "disabled" in answer.json()["detail"]

    hook = await _kept(engine, partner, ["exhausted"])
    url = f"/v1/webhooks/{hook}/deliveries/redeliver"
    for body, field in (
        ({"status": "pending"}, "body.status"),
        ({"limit": 0}, "body.limit"),
        ({"limit": "5"}, "body.limit"),
        ({"created_after": "yesterday"}, "body.created_after"),
        ({"everything": True}, "body.everything"),
    ):
        bad = await api.post(url, json=body, headers=partner.headers)
        assert bad.status_code == 422, body
        assert bad.json()["errors"][0]["field"] == field
    reader = await seed_partner(database_url, role=Role.READER)
    assert (await api.post(url, json={}, headers=reader.headers)).status_code == 403
    assert (await _statuses(engine, hook))["0exhausted"] == "exhausted/21"


# ``escalation webhooks``: the deployment's operators, across partners.


def _uows(engine: AsyncEngine) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(create_session_factory(engine))


async def test_operators_list_every_partners_endpoints_with_their_deliveries_by_status(
    database_url: str, engine: AsyncEngine
) -> None:
    one, two = await seed_partner(database_url), await seed_partner(database_url)
    kept = await _kept(engine, one, ["exhausted", "failed", "succeeded", "exhausted", "pending"])
    disabled = await _disabled(engine, two)
    deleted = await _kept(engine, two, ["exhausted"])
    async with create_session_factory(engine)() as session:
        (await session.get_one(WebhookSubscription, deleted)).deleted_at = utcnow()
        await session.commit()

    found = {e.id: e for e in await admin_webhooks.endpoints(_uows(engine))}

    assert set(found) == {kept, disabled}, "a deleted endpoint is not listed"
    assert found[kept].deliveries == {"exhausted": 2, "failed": 1, "succeeded": 1, "pending": 1}
    assert found[kept].enabled is True
    oldest = found[kept].oldest_kept
    assert oldest is not None
    assert timedelta(minutes=59) < utcnow() - oldest < timedelta(minutes=61)
    assert found[disabled].enabled is False
    assert found[disabled].disabled_reason == GONE
    assert found[disabled].deliveries == {"failed": 3, "succeeded": 1}
    only_two = await admin_webhooks.endpoints(_uows(engine), partner_id=two.id)
    assert [e.id for e in only_two] == [disabled]


async def test_operators_send_every_enabled_endpoints_kept_deliveries_again_in_batches(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_webhooks, "BATCH", 2)
    one, two = await seed_partner(database_url), await seed_partner(database_url)
    first = await _kept(engine, one, ["exhausted"] * 5 + ["failed", "succeeded", "pending"])
    second = await _kept(engine, two, ["exhausted", "failed"])
    disabled = await _disabled(engine, two)
    uows = _uows(engine)

    counted = await admin_webhooks.redeliver(uows, dry_run=True)
    assert {r.endpoint.id: r.requeued for r in counted} == {first: 5, second: 1, disabled: 0}
    assert (await _statuses(engine, first))["0exhausted"] == "exhausted/21", "a dry run"

    done = await admin_webhooks.redeliver(uows)

    assert {r.endpoint.id: r.requeued for r in done} == {first: 5, second: 1, disabled: 0}
    assert await _statuses(engine, first) == {
        **{f"{n}exhausted": "pending/0" for n in range(5)},
        "5failed": "failed/21",
        "6succeeded": "succeeded/21",
        "7pending": "pending/21",
    }
    assert await _statuses(engine, second) == {"0exhausted": "pending/0", "1failed": "failed/21"}
    assert (await _statuses(engine, disabled))["gone"] == "failed/3", "its partner enables it"
    assert sum(r.requeued for r in await admin_webhooks.redeliver(uows)) == 0


async def test_operators_choose_by_partner_endpoint_status_age_and_a_limit_oldest_first(
    database_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_webhooks, "BATCH", 2)
    one, two = await seed_partner(database_url), await seed_partner(database_url)
    hook = await _kept(engine, one, ["exhausted", "failed", "exhausted", "exhausted", "failed"])
    other = await _kept(engine, two, ["exhausted"])
    uows = _uows(engine)

    await admin_webhooks.redeliver(uows, partner_id=one.id, limit=2)
    assert await _statuses(engine, hook) == {
        "0exhausted": "pending/0",
        "1failed": "failed/21",
        "2exhausted": "pending/0",
        "3exhausted": "exhausted/21",
        "4failed": "failed/21",
    }
    assert await _statuses(engine, other) == {"0exhausted": "exhausted/21"}

    later = utcnow() - timedelta(minutes=57, seconds=30)
    await admin_webhooks.redeliver(
        uows, webhook_id=hook, status=admin_webhooks.Kept.FAILED, created_after=later
    )
    assert (await _statuses(engine, hook))["1failed"] == "failed/21", "older than that"
    assert (await _statuses(engine, hook))["4failed"] == "pending/0"
    assert await _statuses(engine, other) == {"0exhausted": "exhausted/21"}
