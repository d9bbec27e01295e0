"""Reading issues: one with its decision, routing and timeline, or a filtered page of them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from services.intake.deps import Principal, owned
from services.intake.pagination import keyset_page
from services.intake.schemas import (
    ClassificationView,
    DeliveryView,
    IssuePage,
    IssueSummary,
    IssueView,
    RoutingView,
    TimelineEntry,
)
from shared.db.models import Classification, Issue, IssueEvent, ProviderHandoff, WebhookDelivery
from shared.db.uow import UnitOfWork
from shared.vocabulary import IssueStatus, Outcome


async def owned_issue(
    uow: UnitOfWork, principal: Principal, issue_id: uuid.UUID, *, lock: bool = False
) -> Issue:
    """The partner's issue, if this key's role may see its category; otherwise 404, the same
    answer as for an issue that does not exist. ``lock``: as :func:`owned`'s."""
    return await owned(
        uow,
        principal,
        Issue,
        issue_id,
        "issue",
        hidden=lambda issue: not principal.may_handle(issue.category),
        lock=lock,
    )


async def issue_view(uow: UnitOfWork, principal: Principal, issue_id: uuid.UUID) -> IssueView:
    """The issue with its decision, routing and timeline; 404 for another partner's issue."""
    session = uow.session
    issue = await owned_issue(uow, principal, issue_id)
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
        **_columns(issue, IssueView),
        classification=ClassificationView.model_validate(decision, from_attributes=True)
        if decision
        else None,
        routing=routing,
        timeline=[
            TimelineEntry(status=IssueStatus(e.status), at=e.at, detail=e.detail) for e in timeline
        ],
    )


async def list_issues(
    uow: UnitOfWork,
    principal: Principal,
    *,
    status: IssueStatus | None,
    outcome: Outcome | None,
    customer_id: uuid.UUID | None,
    service: str | None,
    created_after: datetime | None,
    updated_after: datetime | None,
    limit: int,
    cursor: str | None,
) -> IssuePage:
    """The partner's issues newest first, filtered; the service name matches in any case."""
    query = (
        select(Issue, Classification)
        .outerjoin(Classification, Classification.issue_id == Issue.id)
        .where(Issue.partner_id == principal.partner_id)
    )
    if principal.categories is not None:
        query = query.where(Issue.category.in_(principal.categories))
    if status is not None:
        query = query.where(Issue.status == status.value)
    if outcome is not None:
        query = query.where(Classification.outcome == outcome.value)
    if customer_id is not None:
        query = query.where(Issue.customer_id == customer_id)
    if service:
        query = query.where(func.lower(Issue.service) == service.lower())
    if created_after is not None:
        query = query.where(Issue.created_at > created_after)
    if updated_after is not None:
        query = query.where(Issue.updated_at > updated_after)
    rows, next_cursor = await keyset_page(
        uow.session,
        query,
        Issue.created_at,
        Issue.id,
        limit=limit,
        cursor=cursor,
        id_type=uuid.UUID,
        rows=True,
    )
    return IssuePage(
        items=[_summary(issue, decision) for issue, decision in rows], next_cursor=next_cursor
    )


def _summary(issue: Issue, decision: Classification | None) -> IssueSummary:
    decided = {
        "category": decision.category if decision else issue.category,
        "outcome": decision.outcome if decision else None,
        "vehicle": decision.vehicle if decision else None,
    }
    return IssueSummary(**{**_columns(issue, IssueSummary), **decided})


def _columns(issue: Issue, view: type[IssueView | IssueSummary]) -> dict[str, object]:
    """The view's fields that are the issue's own columns, as stored."""
    return {
        name: getattr(issue, name) for name in view.model_fields if name in Issue.__table__.columns
    }
