"""A PSA's update to an issue: resolve or close it, add a note, or have it classified again
with a category, new text or a new ticket type; each on ``issues.updated``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from services.intake.deps import Principal
from services.intake.issue_queries import issue_view, owned_issue
from services.intake.problems import Problem
from services.intake.schemas import IssuePatch, IssueView
from shared.db.base import utcnow
from shared.db.models import Classification, Issue
from shared.db.uow import UnitOfWork
from shared.events.models import IssueReceived
from shared.issue_state import IllegalTransition, add_note, advance, reopen
from shared.kafka.outbox import enqueue
from shared.vocabulary import IssueStatus, Outcome

SERVICE = "intake"


async def update_issue(
    uow: UnitOfWork, principal: Principal, issue_id: uuid.UUID, patch: IssuePatch
) -> IssueView:
    async with uow:
        # Locked: serialised with the classifier and notifier moving the same issue.
        issue = await owned_issue(uow, principal, issue_id, lock=True)
        now = utcnow()
        current = IssueStatus(issue.status)
        if patch.reclassifies:
            if patch.category is not None and not principal.may_handle(patch.category):
                raise Problem(
                    403, f"A {principal.role.value} key cannot give the category {patch.category}."
                )
            await _classify_again(uow, issue, patch, now)
        elif patch.status is not None and patch.status is not current:
            try:
                advance(
                    uow.session,
                    issue,
                    patch.status,
                    detail=patch.note or f"{patch.status.value} by the PSA",
                    at=now,
                    service=SERVICE,
                    note=patch.note,
                )
            except IllegalTransition as exc:
                raise Problem(
                    409,
                    str(exc),
                    current_status=current.value,
                    allowed_statuses=[s.value for s in exc.allowed],
                ) from exc
        elif patch.note is not None:
            add_note(uow.session, issue, patch.note, at=now, service=SERVICE)
            issue.updated_at = now
        await uow.flush()
        view = await issue_view(uow, principal, issue.id)
        await uow.commit()
        return view


async def _classify_again(uow: UnitOfWork, issue: Issue, patch: IssuePatch, now: datetime) -> None:
    """Put an issue routed with messages only (:data:`_NOTHING_FILED`) back to ``received``
    with the PSA's category, text or ticket type: its decision is dropped (the timeline keeps
    it) and a new ``IssueReceived`` is published. A key bound to categories sees only issues
    of its own category and may give no other (``principal``'s check, by the caller)."""
    session = uow.session
    decision = await session.scalar(
        select(Classification).where(Classification.issue_id == issue.id)
    )
    current = IssueStatus(issue.status)
    _check_answerable(current, decision)
    try:
        reopen(
            session,
            issue,
            detail=f"{_given(patch)}; to be classified again",
            note=patch.note,
            at=now,
            service=SERVICE,
        )
    except IllegalTransition as exc:  # resolved or closed since it was routed
        raise Problem(
            409,
            f"This issue is {current.value}: a category, description or ticket type is taken "
            "once it is routed and before it is resolved or closed.",
            current_status=current.value,
        ) from exc
    await session.delete(decision)
    if patch.category is not None:
        issue.category = patch.category.value
    if patch.description is not None:
        issue.description = patch.description
    if patch.psa_type is not None:
        issue.psa_type = patch.psa_type
    enqueue(session, _received_again(issue, now), service=SERVICE)


def _check_answerable(current: IssueStatus, decision: Classification | None) -> None:
    """409 unless the issue was routed on a decision the PSA may replace (:func:`reopen` then
    refuses one resolved or closed since)."""
    if decision is None or not _answerable(decision):
        outcome = f", {decision.outcome}" if decision is not None else ""
        raise Problem(
            409,
            "A category, description or ticket type is taken by an issue routed without a "
            "Microsoft request or a provider hand-off (needs_information, partner_resolves, "
            f"linked_to_incident); this one is {current.value}{outcome}.",
            current_status=current.value,
        )


def _given(patch: IssuePatch) -> str:
    """The timeline's words for what the PSA gave, with its note."""
    given = [
        *([f"category {patch.category.value}"] if patch.category is not None else []),
        *(["description"] if patch.description is not None else []),
        *([f"ticket type {patch.psa_type!r}"] if patch.psa_type is not None else []),
    ]
    return " and ".join(given) + " given by the PSA" + (f" ({patch.note})" if patch.note else "")


def _answerable(decision: Classification) -> bool:
    """Whether the PSA's category, text or ticket type may replace ``decision``: routing it filed no
    Microsoft request and handed nothing to a provider, so there is nothing to take back."""
    return decision.outcome in _NOTHING_FILED


# The outcomes routed with messages only: the service asked, left it to the partner, or linked
# it to an incident (which may since be resolved with the customer's problem still there).
_NOTHING_FILED = frozenset(
    {Outcome.NEEDS_INFORMATION, Outcome.PARTNER_RESOLVES, Outcome.LINKED_TO_INCIDENT}
)


def _received_again(issue: Issue, now: datetime) -> IssueReceived:
    """The issue as it stands, announced anew (a new event id) for the classifier."""
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
        psa_type=issue.psa_type,
        severity=issue.severity,
        locale=issue.locale,
        contact=issue.contact,
        received_at=now,
    )
