"""An endpoint hears about one issue in the order its outcomes were decided: a delivery waits
while an earlier one about the same issue to the same endpoint is still pending."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.dispatcher import WebhookDispatcher
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.settings import WebhookSettings
from tests.support.factories import accepted_issues, seed_partner
from tests.support.receiver import WebhookReceiver


async def test_a_later_delivery_about_an_issue_waits_for_the_earlier_one(
    engine: AsyncEngine, database_url: str
) -> None:
    """The earlier delivery is being retried (pending, not due yet): the later one about the
    same issue waits, though due; another issue's delivery does not. Once the earlier one is
    delivered, the later one goes."""
    partner = await seed_partner(database_url)
    first_issue, other_issue = (
        e.issue_id for e in await accepted_issues(engine, partner.id, ["order-a", "order-b"])
    )
    receiver = WebhookReceiver()
    subscription = await _subscribed(engine, partner.id, receiver.url)
    created = utcnow() - timedelta(minutes=1)
    await _queued(
        engine,
        subscription,
        partner.id,
        {
            "asked": (first_issue, created, utcnow() + timedelta(hours=1)),
            "decided": (first_issue, created + timedelta(seconds=1), created),
            "other": (other_issue, created + timedelta(seconds=2), created),
        },
    )
    settings = WebhookSettings(allow_private_targets=True)
    async with receiver.running(), httpx.AsyncClient() as client:
        dispatcher = WebhookDispatcher(
            UnitOfWorkFactory(create_session_factory(engine)), settings, client
        )
        assert await dispatcher.dispatch_once() == 1  # "other"; "decided" waits for "asked"
        assert await dispatcher.dispatch_once() == 0
        await _due_now(engine, "asked")
        assert await dispatcher.dispatch_once() == 1
        assert await dispatcher.dispatch_once() == 1  # "asked" delivered: now "decided"
        assert await dispatcher.dispatch_once() == 0

    sent = [r.headers["webhook-id"].split("_")[1] for r in receiver.received]
    assert sent == ["other", "asked", "decided"]
    assert await _statuses(engine, subscription) == dict.fromkeys(
        ["asked", "decided", "other"], "succeeded"
    )


async def _subscribed(engine: AsyncEngine, partner_id: uuid.UUID, url: str) -> uuid.UUID:
    subscription_id = uuid.uuid4()
    async with create_session_factory(engine)() as session:
        session.add(
            WebhookSubscription(
                id=subscription_id, partner_id=partner_id, url=url, secret="whsec_" + "A" * 32
            )
        )
        await session.commit()
    return subscription_id


async def _queued(
    engine: AsyncEngine,
    subscription_id: uuid.UUID,
    partner_id: uuid.UUID,
    deliveries: dict[str, tuple[uuid.UUID, datetime, datetime]],
) -> None:
    """One pending delivery per entry (name: its issue, when it was queued, when it is due)."""
    async with create_session_factory(engine)() as session:
        for name, (issue_id, created_at, due) in deliveries.items():
            session.add(
                WebhookDelivery(
                    id=f"msg_{name}_{subscription_id.hex}",
                    subscription_id=subscription_id,
                    partner_id=partner_id,
                    issue_id=issue_id,
                    event_id=f"evt_{name}_{uuid.uuid4().hex}",
                    event_type="issue.partner_action_required",
                    body="{}",
                    created_at=created_at,
                    next_attempt_at=due,
                )
            )
        await session.commit()


async def _due_now(engine: AsyncEngine, name: str) -> None:
    async with create_session_factory(engine)() as session:
        delivery = await session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id.startswith(f"msg_{name}_"))
        )
        assert delivery is not None
        delivery.next_attempt_at = utcnow() - timedelta(seconds=1)
        await session.commit()


async def _statuses(engine: AsyncEngine, subscription_id: uuid.UUID) -> dict[str, str]:
    async with create_session_factory(engine)() as session:
        found = await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.status).where(
                WebhookDelivery.subscription_id == subscription_id
            )
        )
        return {row.id.split("_")[1]: row.status for row in found}
