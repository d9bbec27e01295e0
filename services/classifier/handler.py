"""Classify one received issue: load facts, apply the rules, store the decision, announce it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from services.classifier.facts import Decision, IncidentFacts, IssueFacts, PartnerFacts
from services.classifier.rules import decide
from shared.db.base import utcnow
from shared.db.models import Classification, HealthIncident, Issue, IssueEvent, Partner
from shared.db.uow import UnitOfWork
from shared.events.envelope import Envelope, InvalidMessage
from shared.events.models import IssueClassified, IssueReceived
from shared.issue_state import issue_awaiting
from shared.kafka.outbox import enqueue
from shared.vocabulary import CspModel, IssueStatus, Severity, Vehicle

SERVICE = "classifier"


async def handle_issue_received(uow: UnitOfWork, envelope: Envelope) -> None:
    event = envelope.data
    if not isinstance(event, IssueReceived):
        raise InvalidMessage(f"classifier does not handle {envelope.type}")
    session = uow.session
    loaded = await issue_awaiting(session, event, IssueStatus.RECEIVED)
    if loaded is None:
        return
    issue, partner = loaded

    decision = decide(_issue_facts(event), _partner_facts(partner), await _incidents(uow, event))
    now = utcnow()
    session.add(_classification(issue, decision))
    issue.status = IssueStatus.CLASSIFIED
    issue.updated_at = now
    session.add(
        IssueEvent(
            issue_id=issue.id,
            status=IssueStatus.CLASSIFIED,
            detail=f"{decision.outcome.value} ({decision.rule_id})",
            at=now,
        )
    )
    enqueue(session, _classified_event(event, decision, now), service=SERVICE)


def _issue_facts(event: IssueReceived) -> IssueFacts:
    return IssueFacts(
        title=event.title,
        description=event.description,
        service=event.service,
        severity=Severity(event.severity),
        category=event.category,
        region=event.region,
        tenant_id=event.tenant_id,
    )


def _partner_facts(partner: Partner) -> PartnerFacts:
    vehicles = frozenset(
        Vehicle(v) for v in partner.support_vehicles if v in Vehicle.__members__.values()
    )
    return PartnerFacts(
        csp_model=CspModel(partner.csp_model), support_vehicles=vehicles, locale=partner.locale
    )


async def _incidents(uow: UnitOfWork, event: IssueReceived) -> list[IncidentFacts]:
    rows = await uow.session.scalars(
        select(HealthIncident)
        .where(HealthIncident.is_resolved.is_(False))
        .where(
            or_(HealthIncident.partner_id.is_(None), HealthIncident.partner_id == event.partner_id)
        )
        .order_by(HealthIncident.start_at.desc())
    )
    return [
        IncidentFacts(
            id=row.id,
            service=row.service,
            classification=row.classification,
            is_resolved=row.is_resolved,
            regions=tuple(row.regions),
            tenant_ids=tuple(row.tenant_ids),
            title=row.title,
        )
        for row in rows
    ]


def _decision_fields(decision: Decision) -> dict[str, Any]:
    """What is both stored as the classification and announced in ``IssueClassified``."""
    return {
        "category": decision.category,
        "category_source": decision.category_source,
        "outcome": decision.outcome,
        "vehicle": decision.vehicle,
        "partner_role": decision.partner_role,
        "reasons": list(decision.reasons),
        "rule_id": decision.rule_id,
        "health_incident_id": decision.health_incident_id,
        "language": decision.language,
        "confidence": decision.confidence,
    }


def _classification(issue: Issue, decision: Decision) -> Classification:
    return Classification(issue_id=issue.id, **_decision_fields(decision))


def _classified_event(event: IssueReceived, decision: Decision, now: datetime) -> IssueClassified:
    return IssueClassified(
        issue_id=event.issue_id,
        partner_id=event.partner_id,
        external_ref=event.external_ref,
        severity=event.severity,
        service=event.service,
        region=event.region,
        classified_at=now,
        **_decision_fields(decision),
    )
