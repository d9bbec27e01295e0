"""Webhook endpoints across partners, for the deployment's operators (``escalation webhooks``).

What each endpoint holds unsent, and its kept deliveries sent again after an outage on this
side (an egress proxy, name resolution, a certificate store): every partner's deliveries
exhausted their retries at once, and ``POST /v1/webhooks/{id}/deliveries/redeliver`` is one
partner's key and one endpoint at a time. A disabled endpoint (it answered 410, or its partner
deleted it) is left alone: its partner enables it, which puts back what the disabling stopped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, func, or_, select

from shared.db.models import Partner, WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from shared.webhook_queue import requeue

# Deliveries requeued per transaction: a short turn at SQLite's write lock for each.
BATCH = 500


class Kept(StrEnum):
    """The deliveries the dispatcher stopped sending and keeps."""

    EXHAUSTED = "exhausted"  # every retry failed: the receiver was away, or we could not reach it
    FAILED = "failed"  # refused at once (a 4xx), or stopped by a disabled endpoint


_KEPT = frozenset(kept.value for kept in Kept)


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    partner_id: uuid.UUID
    partner: str
    url: str
    audience: str
    enabled: bool
    disabled_reason: str | None
    deliveries: dict[str, int] = field(default_factory=dict)
    oldest_kept: datetime | None = None  # the oldest exhausted or failed delivery


@dataclass(frozen=True)
class Redelivered:
    endpoint: Endpoint
    requeued: int  # in a dry run, how many would be


async def endpoints(
    uows: UnitOfWorkFactory,
    *,
    partner_id: uuid.UUID | None = None,
    webhook_id: uuid.UUID | None = None,
) -> list[Endpoint]:
    """The endpoints not deleted, by partner name, with their deliveries counted by status."""
    chosen = _chosen(partner_id, webhook_id)
    async with uows() as uow:
        found = (
            await uow.session.execute(
                select(WebhookSubscription, Partner.name)
                .join(Partner, Partner.id == WebhookSubscription.partner_id)
                .where(*chosen)
                .order_by(Partner.name, WebhookSubscription.created_at, WebhookSubscription.id)
            )
        ).all()
        counted = await uow.session.execute(
            select(
                WebhookDelivery.subscription_id,
                WebhookDelivery.status,
                func.count(),
                func.min(WebhookDelivery.created_at),
            )
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .where(*chosen)
            .group_by(WebhookDelivery.subscription_id, WebhookDelivery.status)
        )
        counts: dict[uuid.UUID, dict[str, int]] = {}
        oldest: dict[uuid.UUID, datetime] = {}
        for subscription_id, status, count, first in counted:
            counts.setdefault(subscription_id, {})[status] = count
            if status in _KEPT and first is not None:
                known = oldest.get(subscription_id)
                oldest[subscription_id] = first if known is None else min(known, first)
        return [
            Endpoint(
                id=s.id,
                partner_id=s.partner_id,
                partner=name,
                url=s.url,
                audience=s.audience,
                enabled=s.enabled,
                disabled_reason=s.disabled_reason,
                deliveries=counts.get(s.id, {}),
                oldest_kept=oldest.get(s.id),
            )
            for s, name in found
        ]


async def redeliver(
    uows: UnitOfWorkFactory,
    *,
    status: Kept = Kept.EXHAUSTED,
    partner_id: uuid.UUID | None = None,
    webhook_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    limit: int | None = None,
    dry_run: bool = False,
) -> list[Redelivered]:
    """Every enabled endpoint's ``status`` deliveries (created after ``created_after``; at most
    ``limit`` in all) pending again from their first attempt, oldest first, ``BATCH`` per
    transaction. Each delivery is visited once: one refused again at once while this runs
    stays ``failed``. The disabled endpoints are listed with nothing requeued."""
    done: list[Redelivered] = []
    left = limit
    for endpoint in await endpoints(uows, partner_id=partner_id, webhook_id=webhook_id):
        if not endpoint.enabled or left == 0:
            done.append(Redelivered(endpoint, 0))
            continue
        requeued = await _requeue_kept(uows, endpoint.id, status, created_after, left, dry_run)
        if left is not None:
            left -= requeued
        done.append(Redelivered(endpoint, requeued))
    return done


async def _requeue_kept(
    uows: UnitOfWorkFactory,
    subscription_id: uuid.UUID,
    status: Kept,
    created_after: datetime | None,
    limit: int | None,
    dry_run: bool,
) -> int:
    """Walks the endpoint's ``status`` deliveries oldest first, a batch per transaction."""
    after: tuple[datetime, str] | None = None
    walked = requeued = 0
    while limit is None or walked < limit:
        size = BATCH if limit is None else min(BATCH, limit - walked)
        which = _kept(subscription_id, status, created_after, after)
        async with uows() as uow:
            batch = (
                await uow.session.execute(
                    select(WebhookDelivery.created_at, WebhookDelivery.id)
                    .where(*which)
                    .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
                    .limit(size)
                )
            ).all()
            if dry_run:
                requeued += len(batch)
            elif batch:
                ids = [row.id for row in batch]
                # ``which`` again: one its partner requeued meanwhile is not counted twice.
                requeued += await requeue(uow.session, WebhookDelivery.id.in_(ids), *which)
                await uow.commit()
        walked += len(batch)
        if len(batch) < size:
            break
        after = (batch[-1].created_at, batch[-1].id)
    return requeued


def _kept(
    subscription_id: uuid.UUID,
    status: Kept,
    created_after: datetime | None,
    after: tuple[datetime, str] | None,
) -> list[ColumnElement[bool]]:
    """The endpoint's ``status`` deliveries created after ``created_after``, and after the
    delivery ``after`` (its creation time and id) in the walk's order."""
    delivery = WebhookDelivery
    which = [delivery.subscription_id == subscription_id, delivery.status == status.value]
    if created_after is not None:
        which.append(delivery.created_at > created_after)
    if after is not None:
        created_at, last_id = after
        which.append(
            or_(
                delivery.created_at > created_at,
                and_(delivery.created_at == created_at, delivery.id > last_id),
            )
        )
    return which


def _chosen(
    partner_id: uuid.UUID | None, webhook_id: uuid.UUID | None
) -> list[ColumnElement[bool]]:
    chosen: list[ColumnElement[bool]] = [WebhookSubscription.deleted_at.is_(None)]
    if partner_id is not None:
        chosen.append(WebhookSubscription.partner_id == partner_id)
    if webhook_id is not None:
        chosen.append(WebhookSubscription.id == webhook_id)
    return chosen
