"""Issue use cases: accept one (with its outbox event) and read one back."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.intake import idempotency
from services.intake.deps import Principal
from services.intake.idempotency import StoredAnswer
from services.intake.problems import Problem
from services.intake.schemas import (
    ClassificationView,
    DeliveryView,
    IssueAccepted,
    IssueCreate,
    IssueView,
    RoutingView,
    TimelineEntry,
)
from shared.db.base import utcnow
from shared.db.models import (
    Classification,
    Customer,
    Issue,
    IssueEvent,
    ProviderHandoff,
    WebhookDelivery,
)
from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.events.models import IssueReceived
from shared.kafka.outbox import enqueue
from shared.vocabulary import IssueStatus

SERVICE = "intake"


async def accept_issue(
    uow_factory: UnitOfWorkFactory,
    principal: Principal,
    body: IssueCreate,
    *,
    idempotency_key: str | None,
) -> StoredAnswer:
    """Store the issue and its ``IssueReceived`` event in one transaction.

    A lost race on the idempotency key or the PSA reference is retried once, and then finds the
    winner's answer.
    """
    for attempt in range(2):
        try:
            return await _accept_once(uow_factory, principal, body, idempotency_key)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


async def _accept_once(
    uow_factory: UnitOfWorkFactory,
    principal: Principal,
    body: IssueCreate,
    idempotency_key: str | None,
) -> StoredAnswer:
    body_hash = idempotency.request_hash(body.model_dump(mode="json"))
    async with uow_factory() as uow:
        if idempotency_key:
            stored = await idempotency.replay(
                uow, partner_id=principal.partner_id, key=idempotency_key, body_hash=body_hash
            )
            if stored is not None:
                return stored
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
            return StoredAnswer(200, duplicate.model_dump(mode="json"))
        issue = await _new_issue(uow, principal, body)
        answer = StoredAnswer(
            202,
            IssueAccepted(
                id=issue.id, status=IssueStatus.RECEIVED, external_ref=issue.external_ref
            ).model_dump(mode="json"),
        )
        if idempotency_key:
            idempotency.remember(
                uow,
                partner_id=principal.partner_id,
                key=idempotency_key,
                body_hash=body_hash,
                answer=answer,
            )
        await uow.commit()
        return answer


async def _new_issue(uow: UnitOfWork, principal: Principal, body: IssueCreate) -> Issue:
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
        severity=body.severity,
        contact=body.contact.model_dump(exclude_none=True) if body.contact else {},
        locale=body.locale or (customer.locale if customer else None),
        status=IssueStatus.RECEIVED,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(issue)
    uow.session.add(
        IssueEvent(
            issue_id=issue.id, status=IssueStatus.RECEIVED, detail="accepted from PSA", at=now
        )
    )
    enqueue(uow.session, _received_event(issue, now), service=SERVICE)
    await uow.session.flush()
    return issue


async def _customer(uow: UnitOfWork, principal: Principal, body: IssueCreate) -> Customer | None:
    if body.customer_id is not None:
        customer = await uow.session.get(Customer, body.customer_id)
        if customer is None or customer.partner_id != principal.partner_id:
            raise Problem(
                422,
                "The request has invalid fields.",
                errors=[
                    {
                        "field": "body.customer_id",
                        "message": "no such customer",
                        "type": "not_found",
                    }
                ],
            )
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


async def issue_view(uow: UnitOfWork, principal: Principal, issue_id: uuid.UUID) -> IssueView:
    """The issue with its decision, routing and timeline; 404 for another partner's issue."""
    session = uow.session
    issue = await session.get(Issue, issue_id)
    if issue is None or issue.partner_id != principal.partner_id:
        raise Problem(404, f"No issue {issue_id}.")
    decision = await session.scalar(
        select(Classification).where(Classification.issue_id == issue.id)
    )
    timeline = await session.scalars(
        select(IssueEvent).where(IssueEvent.issue_id == issue.id).order_by(IssueEvent.id)
    )
    routing = None
    if issue.status in (IssueStatus.ROUTED, IssueStatus.RESOLVED, IssueStatus.CLOSED):
        deliveries = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.issue_id == issue.id)
            .order_by(WebhookDelivery.created_at)
        )
        handoff = await session.scalar(
            select(ProviderHandoff).where(ProviderHandoff.issue_id == issue.id)
        )
        routing = RoutingView(
            microsoft_request_id=issue.microsoft_request_id,
            provider=handoff.provider if handoff else None,
            handoff_id=handoff.id if handoff else None,
            webhook_deliveries=[
                DeliveryView(
                    id=d.id,
                    event_type=d.event_type,
                    status=d.status,
                    attempts=d.attempts,
                    last_status_code=d.last_status_code,
                )
                for d in deliveries
            ],
        )
    return IssueView(
        id=issue.id,
        external_ref=issue.external_ref,
        status=IssueStatus(issue.status),
        title=issue.title,
        description=issue.description,
        service=issue.service,
        region=issue.region,
        severity=issue.severity,
        category=issue.category,
        customer_id=issue.customer_id,
        tenant_id=issue.tenant_id,
        created_at=issue.created_at,
        updated_at=issue.updated_at,
        classification=ClassificationView.model_validate(decision, from_attributes=True)
        if decision
        else None,
        routing=routing,
        timeline=[
            TimelineEntry(status=IssueStatus(e.status), at=e.at, detail=e.detail) for e in timeline
        ],
    )
