"""Accepting an issue: stored with its outbox event in one transaction, idempotently."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import insert, select

from services.intake.deps import Principal
from services.intake.idempotency import IdempotentRequest, StoredAnswer
from services.intake.problems import invalid_field
from services.intake.psa import Resolved
from services.intake.schemas import IssueAccepted, IssueCreate
from shared.db.base import table_of, utcnow
from shared.db.models import Customer, Issue, IssueEvent
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.db.upsert import insert_if_absent
from shared.events.models import IssueReceived
from shared.kafka.outbox import enqueue_now
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
        issue = await _new_issue(uow, principal, body, severity)
        if issue is None:
            return await _already_accepted(uow, principal, body.external_ref)
        structlog.contextvars.bind_contextvars(issue_id=str(issue.issue_id))
        accepted = IssueAccepted(
            id=issue.issue_id, status=IssueStatus.RECEIVED, external_ref=issue.external_ref
        )
        return StoredAnswer(202, accepted.model_dump(mode="json"), _location(issue.issue_id))

    return await request.run(
        uow_factory, principal.partner_id, body.model_dump(mode="json"), produce
    )


def _location(issue_id: uuid.UUID) -> str:
    return f"/v1/issues/{issue_id}"


async def _already_accepted(
    uow: UnitOfWork, principal: Principal, external_ref: str
) -> StoredAnswer:
    existing = (
        await uow.session.execute(
            select(Issue.id, Issue.status).where(
                Issue.partner_id == principal.partner_id, Issue.external_ref == external_ref
            )
        )
    ).one()
    duplicate = IssueAccepted(
        id=existing.id,
        status=IssueStatus(existing.status),
        external_ref=external_ref,
        duplicate=True,
    )
    return StoredAnswer(200, duplicate.model_dump(mode="json"), _location(existing.id))


async def _new_issue(
    uow: UnitOfWork, principal: Principal, body: IssueCreate, severity: Resolved
) -> IssueReceived | None:
    """Insert the issue unless this partner's PSA ticket is already one (then None); the
    database decides between two concurrent requests for the same ticket."""
    customer = await _customer(uow, principal, body)
    now = utcnow()
    event = IssueReceived(
        issue_id=uuid.uuid4(),
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
        locale=body.locale or (customer.locale if customer else None),
        contact=body.contact.model_dump(exclude_none=True) if body.contact else {},
        received_at=now,
    )
    row = {
        **event.model_dump(exclude={"issue_id", "received_at"}),
        "id": event.issue_id,
        "status": IssueStatus.RECEIVED,
        "created_at": now,
        "updated_at": now,
    }
    if not await insert_if_absent(uow.session, Issue, row, conflict=["partner_id", "external_ref"]):
        return None
    await uow.session.execute(
        insert(table_of(IssueEvent)),
        {
            "issue_id": event.issue_id,
            "status": IssueStatus.RECEIVED,
            "detail": f"accepted from PSA; severity {severity.severity.value} ({severity.source})",
            "at": now,
        },
    )
    await enqueue_now(uow.session, event, service=SERVICE)
    return event


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
