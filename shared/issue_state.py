"""The issue lifecycle: legal transitions, moving an issue, loading the one an event is about.

received → classified → routed → resolved → closed; a PSA may resolve or close an issue at any
point before that (the customer fixed it, or withdrew it). Every transition is a timeline step
and an ``issues.updated`` event, in the caller's transaction; both are staged
(:mod:`shared.db.staged`), so a query in that transaction sees them only after the unit of
work's ``flush()``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of
from shared.db.direct import bound
from shared.db.listed import looked_up
from shared.db.models import Issue, Partner
from shared.db.models import IssueEvent as TimelineEntry
from shared.db.staged import stage
from shared.db.uow import UnitOfWork
from shared.events.envelope import Envelope, InvalidMessage
from shared.events.models import IssueEvent, IssueUpdated
from shared.kafka.outbox import enqueue
from shared.vocabulary import IssueStatus

TRANSITIONS: dict[IssueStatus, frozenset[IssueStatus]] = {
    IssueStatus.RECEIVED: frozenset(
        {IssueStatus.CLASSIFIED, IssueStatus.RESOLVED, IssueStatus.CLOSED}
    ),
    IssueStatus.CLASSIFIED: frozenset(
        {IssueStatus.ROUTED, IssueStatus.RESOLVED, IssueStatus.CLOSED}
    ),
    IssueStatus.ROUTED: frozenset({IssueStatus.RESOLVED, IssueStatus.CLOSED}),
    IssueStatus.RESOLVED: frozenset({IssueStatus.CLOSED}),
    IssueStatus.CLOSED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: IssueStatus, wanted: IssueStatus) -> None:
        self.current = current
        self.wanted = wanted
        self.allowed = sorted(TRANSITIONS[current])
        names = ", ".join(s.value for s in self.allowed) or "none: it is final"
        super().__init__(
            f"An issue cannot go from {current.value} to {wanted.value}; from "
            f"{current.value} it can go to {names}."
        )


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


async def preload_issues(uow: UnitOfWork, envelopes: list[Envelope]) -> object:
    """The issues and partners a batch of issue events is about, in two queries; while the
    returned rows are held, :func:`issue_awaiting` finds them without a query of its own."""
    events = [e.data for e in envelopes if isinstance(e.data, IssueEvent)]
    if not events:
        return ()
    session = uow.session
    dialect = session.get_bind().dialect.name
    issues = await session.scalars(
        looked_up(Issue, Issue.id, {e.issue_id for e in events}, dialect)
    )
    partners = await session.scalars(
        select(Partner).where(Partner.id.in_({e.partner_id for e in events}))
    )
    return issues.all(), partners.all()


def advance(
    session: AsyncSession,
    issue: Issue,
    status: IssueStatus,
    *,
    detail: str,
    at: datetime,
    service: str,
    note: str | None = None,
) -> None:
    """Move the issue to ``status``, add the step to its timeline and queue ``issues.updated``,
    in the caller's transaction. :class:`IllegalTransition` if the lifecycle forbids it."""
    current = IssueStatus(issue.status)
    if status not in TRANSITIONS[current]:
        raise IllegalTransition(current, status)
    issue.status = status
    issue.updated_at = at
    _announce(session, issue, detail=detail, note=note or detail, at=at, service=service)


def add_note(session: AsyncSession, issue: Issue, note: str, *, at: datetime, service: str) -> None:
    """A timeline step in the issue's current status, and ``issues.updated`` with the note."""
    _announce(session, issue, detail=note, note=note, at=at, service=service)


def insert_step(dialect: str) -> ClauseElement:
    """One timeline step; staged, or on the driver connection, never an ORM object."""
    return insert(table_of(TimelineEntry)).values(**bound("issue_id", "status", "detail", "at"))


def _announce(
    session: AsyncSession, issue: Issue, *, detail: str, note: str, at: datetime, service: str
) -> None:
    status = IssueStatus(issue.status)
    step = {"issue_id": issue.id, "status": status, "detail": detail, "at": at}
    stage(session, insert_step, step)
    enqueue(
        session,
        IssueUpdated(
            issue_id=issue.id,
            partner_id=issue.partner_id,
            status=status,
            note=note,
            updated_at=at,
        ),
        service=service,
    )
