"""Issue outcome webhooks, queued in the routing transaction and sent by the dispatcher."""

from __future__ import annotations

from typing import Any

from services.notifier.handoff import reseller_view
from services.notifier.messages import next_step
from shared.db.models import Issue, MicrosoftRequest, Partner, ProviderHandoff
from shared.db.uow import UnitOfWork
from shared.events.models import IssueClassified
from shared.vocabulary import WEBHOOK_EVENT_BY_OUTCOME
from shared.webhook_queue import queue_deliveries


def issue_data(
    *,
    partner: Partner,
    issue: Issue,
    event: IssueClassified,
    request: MicrosoftRequest | None,
    handoff: ProviderHandoff | None,
) -> dict[str, Any]:
    """The ``data`` of an issue outcome webhook, with the next step in the partner's language."""
    data = {
        "issue_id": str(issue.id),
        "external_ref": issue.external_ref,
        "customer_id": str(issue.customer_id) if issue.customer_id else None,
        "service": issue.service,
        "category": event.category.value if event.category else None,
        "outcome": event.outcome.value,
        "vehicle": event.vehicle.value if event.vehicle else None,
        "partner_role": event.partner_role.value if event.partner_role else None,
        "reasons": event.reasons,
        "next_step": next_step(
            event.outcome,
            partner.locale,
            filing=request.submission if request else None,
            provider_notified=bool(handoff.delivery_ids) if handoff else None,
        ),
        "health_incident_id": event.health_incident_id,
        "cluster_id": event.cluster_id,
        "microsoft_request_id": str(request.id) if request else None,
        "microsoft_request": (
            {
                "id": str(request.id),
                "vehicle": request.vehicle,
                "severity": request.severity,
                "support_topic_id": request.support_topic_id,
                "submission": request.submission,
                "submission_error": request.submission_error,
            }
            if request
            else None
        ),
        "locale": partner.locale,
    }
    if handoff is not None:
        data["handoff"] = reseller_view(handoff)
    return data


async def schedule_deliveries(
    uow: UnitOfWork,
    *,
    partner: Partner,
    issue: Issue,
    event: IssueClassified,
    event_id: str,
    request: MicrosoftRequest | None = None,
    handoff: ProviderHandoff | None = None,
) -> list[str]:
    """Queue the outcome's webhook for every subscription that wants it; return their ids."""
    webhook_type = WEBHOOK_EVENT_BY_OUTCOME[event.outcome]
    data = issue_data(partner=partner, issue=issue, event=event, request=request, handoff=handoff)
    return await queue_deliveries(
        uow.session,
        partner_id=partner.id,
        webhook_type=webhook_type,
        data=data,
        event_id=event_id,
        issue_id=issue.id,
    )
