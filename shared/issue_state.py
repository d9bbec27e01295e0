"""Loading the issue an event is about, in the state the consumer expects it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Issue, Partner
from shared.db.models import IssueEvent as TimelineEntry
from shared.events.envelope import InvalidMessage
from shared.events.models import IssueEvent
from shared.vocabulary import IssueStatus


async def issue_awaiting(
    session: AsyncSession, event: IssueEvent, status: IssueStatus
) -> tuple[Issue, Partner] | None:
    """The issue and its partner if the issue is still in ``status``; ``None`` if it moved on.

    An event about an issue or partner the database does not know can never be processed.
    """
    issue = await session.get(Issue, event.issue_id)
    if issue is None or issue.partner_id != event.partner_id:
        raise InvalidMessage(f"issue {event.issue_id} is not in the database")
    if issue.status != status:
        return None
    partner = await session.get(Partner, event.partner_id)
    if partner is None:
        raise InvalidMessage(f"partner {event.partner_id} is not in the database")
    return issue, partner


def advance(
    session: AsyncSession, issue: Issue, status: IssueStatus, *, detail: str, at: datetime
) -> None:
    """Move the issue to ``status`` and add the step to its timeline, in the caller's
    transaction."""
    issue.status = status
    issue.updated_at = at
    session.add(TimelineEntry(issue_id=issue.id, status=status, detail=detail, at=at))
