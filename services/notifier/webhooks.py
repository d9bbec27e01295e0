"""Webhook deliveries: queued in the routing transaction, sent by the dispatcher."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import select

from services.notifier.messages import next_step
from shared.db.base import utcnow
from shared.db.models import Issue, Partner, WebhookDelivery, WebhookSubscription
from shared.db.uow import UnitOfWork
from shared.events.models import IssueClassified
from shared.vocabulary import WEBHOOK_EVENT_BY_OUTCOME


def delivery_id(subscription_id: uuid.UUID, event_id: str) -> str:
    """Stable ``webhook-id``: the same event to the same endpoint always has the same id."""
    return "msg_" + uuid.uuid5(subscription_id, event_id).hex


def issue_payload(
    *,
    webhook_type: str,
    partner: Partner,
    issue: Issue,
    event: IssueClassified,
    microsoft_request_id: uuid.UUID | None,
) -> dict[str, Any]:
    return {
        "type": webhook_type,
        "timestamp": utcnow().isoformat(),
        "data": {
            "issue_id": str(issue.id),
            "external_ref": issue.external_ref,
            "customer_id": str(issue.customer_id) if issue.customer_id else None,
            "service": issue.service,
            "category": event.category.value if event.category else None,
            "outcome": event.outcome.value,
            "vehicle": event.vehicle.value if event.vehicle else None,
            "partner_role": event.partner_role.value if event.partner_role else None,
            "reasons": event.reasons,
            "next_step": next_step(event.outcome, partner.locale),
            "health_incident_id": event.health_incident_id,
            "cluster_id": event.cluster_id,
            "microsoft_request_id": str(microsoft_request_id) if microsoft_request_id else None,
            "locale": partner.locale,
        },
    }


async def schedule_deliveries(
    uow: UnitOfWork,
    *,
    partner: Partner,
    issue: Issue,
    event: IssueClassified,
    event_id: str,
    microsoft_request_id: uuid.UUID | None,
) -> list[str]:
    """Queue one delivery per enabled subscription that wants this event type; return their ids."""
    webhook_type = WEBHOOK_EVENT_BY_OUTCOME[event.outcome]
    subscriptions = await uow.session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.partner_id == partner.id, WebhookSubscription.enabled.is_(True)
        )
    )
    body = orjson.dumps(
        issue_payload(
            webhook_type=webhook_type,
            partner=partner,
            issue=issue,
            event=event,
            microsoft_request_id=microsoft_request_id,
        )
    ).decode()
    ids = []
    for subscription in subscriptions:
        if subscription.event_types and webhook_type not in subscription.event_types:
            continue
        delivery = WebhookDelivery(
            id=delivery_id(subscription.id, event_id),
            subscription_id=subscription.id,
            partner_id=partner.id,
            issue_id=issue.id,
            event_id=event_id,
            event_type=webhook_type,
            body=body,
            next_attempt_at=utcnow(),
        )
        uow.session.add(delivery)
        ids.append(delivery.id)
    return ids
