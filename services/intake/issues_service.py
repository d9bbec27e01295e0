"""Accepting an issue: stored with its outbox event in one transaction, idempotently."""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy import select

from services.intake.deps import Principal
from services.intake.idempotency import IdempotentRequest, StoredAnswer
from services.intake.problems import invalid_field
from services.intake.psa import Resolved
from services.intake.schemas import IssueAccepted, IssueCreate
from shared.db.base import utcnow
from shared.db.models import Customer, Issue, IssueEvent
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.models import IssueReceived
from shared.kafka.outbox import enqueue
from shared.vocabulary import IssueStatus

SERVICE = "intake"


async def accept_issue(
    uow_factory: UnitOfWorkFactory,
    principal: Principal,
    body: IssueCreate,
    request: IdempotentRequest,
    severity: Resolved,
) -> StoredAnswer:
    """Store the issue and its ``IssueReceived`` event in one transaction; a PSA ticket sent
    again answers 200 with the issue it already is."""

    async def produce(uow: UnitOfWork) -> StoredAnswer:
        existing = await uow.session.scalar(
            select(Issue).where(
                Issue.partner_id == principal.partner_id, Issue.external_ref == body.external_ref
            )
        )
        if existing is not None:
            duplicate = IssueAccepted(
                id=existing.id,
                status=IssueStatus(existing.status),
                external_ref=existing.external_ref,
                duplicate=True,
            )
            return StoredAnswer(200, duplicate.model_dump(mode="json"), _location(existing.id))
        issue = await _new_issue(uow, principal, body, severity)
        structlog.contextvars.bind_contextvars(issue_id=str(issue.id))
        accepted = IssueAccepted(
            id=issue.id, status=IssueStatus.RECEIVED, external_ref=issue.external_ref
        )
        return StoredAnswer(202, accepted.model_dump(mode="json"), _location(issue.id))

    return await request.run(
        uow_factory, principal.partner_id, body.model_dump(mode="json"), produce
    )


def _location(issue_id: uuid.UUID) -> str:
    return f"/v1/issues/{issue_id}"


async def _new_issue(
    uow: UnitOfWork, principal: Principal, body: IssueCreate, severity: Resolved
) -> Issue:
    customer = await _customer(uow, principal, body)
    now = utcnow()
    issue = Issue(
        id=uuid.uuid4(),
        partner_id=principal.partner_id,
        customer_id=customer.id if customer else None,
        tenant_id=body.tenant_id or (customer.tenant_id if customer else None),
        external_ref=body.external_ref,
        title=body.title,
        description=body.description,
        service=body.service,
        region=body.region or (customer.region if customer else None),
        category=body.category,
        severity=severity.severity,
        contact=body.contact.model_dump(exclude_none=True) if body.contact else {},
        locale=body.locale or (customer.locale if customer else None),
        status=IssueStatus.RECEIVED,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(issue)
    uow.session.add(
        IssueEvent(
            issue_id=issue.id,
            status=IssueStatus.RECEIVED,
            detail=f"accepted from PSA; severity {severity.severity.value} ({severity.source})",
            at=now,
        )
    )
    enqueue(uow.session, _received_event(issue, now), service=SERVICE)
    await uow.session.flush()
    return issue


async def _customer(uow: UnitOfWork, principal: Principal, body: IssueCreate) -> Customer | None:
    if body.customer_id is not None:
        customer = await uow.session.get(Customer, body.customer_id)
        if customer is None or customer.partner_id != principal.partner_id:
            raise invalid_field("body.customer_id", "no such customer", "not_found")
        return customer
    if body.tenant_id is not None:
        return await uow.session.scalar(
            select(Customer).where(
                Customer.partner_id == principal.partner_id, Customer.tenant_id == body.tenant_id
            )
        )
    return None


def _received_event(issue: Issue, now: datetime) -> IssueReceived:
    return IssueReceived(
        issue_id=issue.id,
        partner_id=issue.partner_id,
        customer_id=issue.customer_id,
        tenant_id=issue.tenant_id,
        external_ref=issue.external_ref,
        title=issue.title,
        description=issue.description,
        service=issue.service,
        region=issue.region,
        category=issue.category,
        severity=issue.severity,
        locale=issue.locale,
        contact=issue.contact,
        received_at=now,
    )
