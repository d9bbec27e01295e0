"""Issue outcome webhooks, queued in the routing transaction and sent by the dispatcher."""

from __future__ import annotations

import uuid
from typing import Any

from services.notifier.messages import next_step
from shared.db.models import Issue, Partner
from shared.db.uow import UnitOfWork
from shared.events.models import IssueClassified
from shared.vocabulary import WEBHOOK_EVENT_BY_OUTCOME
from shared.webhook_queue import queue_deliveries


def issue_data(
    *,
    partner: Partner,
    issue: Issue,
    event: IssueClassified,
    microsoft_request_id: uuid.UUID | None,
) -> dict[str, Any]:
    """The ``data`` of an issue outcome webhook, with the next step in the partner's language."""
    return {
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
    """Queue the outcome's webhook for every subscription that wants it; return their ids."""
    webhook_type = WEBHOOK_EVENT_BY_OUTCOME[event.outcome]
    data = issue_data(
        partner=partner, issue=issue, event=event, microsoft_request_id=microsoft_request_id
    )
    return await queue_deliveries(
        uow.session,
        partner_id=partner.id,
        webhook_type=webhook_type,
        data=data,
        event_id=event_id,
        issue_id=issue.id,
    )
