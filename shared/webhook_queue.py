"""Queue webhook deliveries in the caller's transaction, or queue kept ones again; the notifier's
dispatcher sends them.

The rows are staged (:mod:`shared.db.staged`): the transaction that queues them does not read
them back before its unit of work flushes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, bindparam, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of, utcnow
from shared.db.columnar import inserted
from shared.db.listed import among, listed_ids
from shared.db.loaded import loaded
from shared.db.models import WebhookDelivery, WebhookSubscription
from shared.db.staged import joined, stage
from shared.vocabulary import Audience


def delivery_id(subscription_id: uuid.UUID, event_id: str) -> str:
    """Stable ``webhook-id``: the same event to the same endpoint always has the same id."""
    return "msg_" + uuid.uuid5(subscription_id, event_id).hex


BATCH_KEY = "webhooks.subscriptions"


async def preload_subscriptions(
    session: AsyncSession, partner_ids: set[uuid.UUID], audience: Audience = Audience.PARTNER
) -> None:
    """Read several partners' enabled subscriptions in one query, for the rest of this
    transaction's :func:`queue_deliveries` calls for ``audience``."""
    found = await _enabled(session, audience, partner_ids)
    session.info.setdefault(BATCH_KEY, {}).update(found)


async def _enabled(
    session: AsyncSession, audience: Audience, partner_ids: set[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], list[WebhookSubscription]]:
    """The partners' enabled subscriptions for ``audience``, by partner and audience."""
    statements = await joined(session)
    rows = await statements.fetch(
        _enabled_of,
        {"partners": listed_ids(partner_ids, statements.dialect), "audience": audience.value},
    )
    found: dict[tuple[uuid.UUID, str], list[WebhookSubscription]] = {
        (partner, audience.value): [] for partner in partner_ids
    }
    for subscription in loaded(session, WebhookSubscription, rows):
        found[(subscription.partner_id, audience.value)].append(subscription)
    return found


def _enabled_of(dialect: str) -> ClauseElement:
    subscriptions = table_of(WebhookSubscription)
    return select(subscriptions).where(
        among(subscriptions.c.partner_id, "partners", dialect),
        subscriptions.c.enabled == true(),
        subscriptions.c.audience == bindparam("audience", type_=subscriptions.c.audience.type),
    )


async def queue_deliveries(
    session: AsyncSession,
    *,
    partner_id: uuid.UUID,
    webhook_type: str,
    data: dict[str, Any],
    event_id: str,
    issue_id: uuid.UUID | None = None,
    audience: Audience = Audience.PARTNER,
) -> list[str]:
    """One delivery per enabled subscription of the partner for ``audience`` that wants
    ``webhook_type``.

    The body is Standard Webhooks' ``{"type", "timestamp", "data"}``; returns the delivery ids.
    """
    now = utcnow()
    body = ""  # written for the first subscription that wants it
    preloaded: dict[tuple[uuid.UUID, str], list[WebhookSubscription]] = session.info.get(
        BATCH_KEY, {}
    )
    subscriptions = preloaded.get((partner_id, audience.value))
    if subscriptions is None:
        subscriptions = (await _enabled(session, audience, {partner_id}))[
            (partner_id, audience.value)
        ]
    ids = []
    for subscription in subscriptions:
        if subscription.event_types and webhook_type not in subscription.event_types:
            continue
        queued = delivery_id(subscription.id, event_id)
        body = body or _body(webhook_type, now, data)
        row = {
            "id": queued,
            "subscription_id": subscription.id,
            "partner_id": partner_id,
            "issue_id": issue_id,
            "event_id": event_id,
            "event_type": webhook_type,
            "body": body,
            "next_attempt_at": now,
        }
        stage(session, _insert, row)
        ids.append(queued)
    return ids


def _body(webhook_type: str, now: datetime, data: dict[str, Any]) -> str:
    return orjson.dumps({"type": webhook_type, "timestamp": now.isoformat(), "data": data}).decode()


def _insert(dialect: str) -> ClauseElement:
    return inserted(
        table_of(WebhookDelivery),
        "id",
        "subscription_id",
        "partner_id",
        "issue_id",
        "event_id",
        "event_type",
        "body",
        "next_attempt_at",
    )


async def requeue(session: AsyncSession, *which: ColumnElement[bool]) -> int:
    """Make the deliveries ``which`` selects pending again from their first attempt, each under
    its own ``webhook-id``; how many."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(*which)
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
