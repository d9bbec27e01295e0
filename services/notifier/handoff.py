"""Indirect-provider hand-offs: the record, the provider's webhook, what the reseller is told."""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.models import Issue, Partner, ProviderHandoff
from shared.db.uow import UnitOfWork
from shared.events.models import IssueClassified
from shared.vocabulary import PROVIDER_HANDOFF_EVENT, Audience
from shared.webhook_queue import queue_deliveries


async def hand_off(
    uow: UnitOfWork, *, issue: Issue, partner: Partner, event: IssueClassified, event_id: str
) -> ProviderHandoff:
    """Record the hand-off and queue ``provider_handoff.created`` to every provider endpoint
    the reseller subscribed, in the routing transaction."""
    handoff = ProviderHandoff(
        id=uuid.uuid4(),
        partner_id=partner.id,
        issue_id=issue.id,
        provider=partner.indirect_provider or {},
        payload=_payload(issue, event),
    )
    handoff.delivery_ids = await queue_deliveries(
        uow.session,
        partner_id=partner.id,
        webhook_type=PROVIDER_HANDOFF_EVENT,
        data=provider_data(handoff, partner),
        event_id=event_id,
        issue_id=issue.id,
        audience=Audience.INDIRECT_PROVIDER,
    )
    uow.session.add(handoff)
    return handoff


def _payload(issue: Issue, event: IssueClassified) -> dict[str, Any]:
    """What the provider needs to take the issue further, and nothing the reseller keeps."""
    return {
        "external_ref": issue.external_ref,
        "title": issue.title,
        "description": issue.description,
        "service": issue.service,
        "region": issue.region,
        "customer_tenant_id": str(issue.tenant_id) if issue.tenant_id else None,
        "contact": issue.contact or None,
        "severity": event.severity.value,
        "category": event.category.value if event.category else None,
        "reasons": event.reasons,
        "language": event.language,
    }


def provider_data(handoff: ProviderHandoff, partner: Partner) -> dict[str, Any]:
    """The ``data`` of ``provider_handoff.created``: who hands off what."""
    return {
        "handoff_id": str(handoff.id),
        "issue_id": str(handoff.issue_id),
        "reseller": {"partner_id": str(partner.id), "name": partner.name},
        "provider": handoff.provider,
        "issue": handoff.payload,
        "locale": partner.locale,
    }


def reseller_view(handoff: ProviderHandoff) -> dict[str, Any]:
    """What the reseller is told: the provider, exactly what it was sent, and how."""
    return {
        "id": str(handoff.id),
        "provider": handoff.provider,
        "sent": handoff.payload,
        "provider_delivery_ids": list(handoff.delivery_ids),
        "provider_notified": bool(handoff.delivery_ids),
    }
