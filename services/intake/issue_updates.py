"""A PSA's update to an issue: resolve or close it, or add a note; each on ``issues.updated``."""

from __future__ import annotations

import uuid

from services.intake.deps import Principal
from services.intake.issue_queries import issue_view, owned_issue
from services.intake.problems import Problem
from services.intake.schemas import IssuePatch, IssueView
from shared.db.base import utcnow
from shared.db.uow import UnitOfWork
from shared.issue_state import IllegalTransition, add_note, advance
from shared.vocabulary import IssueStatus

SERVICE = "intake"


async def update_issue(
    uow: UnitOfWork, principal: Principal, issue_id: uuid.UUID, patch: IssuePatch
) -> IssueView:
    async with uow:
        issue = await owned_issue(uow, principal, issue_id)
        # Serialise with the classifier and notifier moving the same issue.
        await uow.session.refresh(issue, with_for_update=True)
        now = utcnow()
        current = IssueStatus(issue.status)
        if patch.status is not None and patch.status is not current:
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
