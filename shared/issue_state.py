"""The issue lifecycle: legal transitions, moving an issue, loading the one an event is about.

received → classified → routed → resolved → closed; a PSA may resolve or close an issue at any
point before that (the customer fixed it, or withdrew it), and a routed issue goes back to
received when the PSA has it classified again (:func:`reopen`). Every transition
is an update of the issue's row, a timeline step and an ``issues.updated`` event, in the
caller's transaction (a service's own event for the step, such as ``issues.classified``, shares
that event's outbox row: :func:`advance`); all three are staged (:mod:`shared.db.staged`), so a
query in that transaction sees them only after the unit of work's ``flush()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of
from shared.db.columnar import inserted, updated
from shared.db.listed import keyed, listed_ids
from shared.db.loaded import get, loaded
from shared.db.models import Issue, Partner
from shared.db.models import IssueEvent as TimelineEntry
from shared.db.staged import joined, stage
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
    issue = await get(session, Issue, event.issue_id)
    if issue is None or issue.partner_id != event.partner_id:
        raise InvalidMessage(f"issue {event.issue_id} is not in the database")
    if issue.status != status:
        return None
    partner = await get(session, Partner, event.partner_id)
    if partner is None:
        raise InvalidMessage(f"partner {event.partner_id} is not in the database")
    return issue, partner


async def preload_issues(uow: UnitOfWork, envelopes: list[Envelope]) -> object:
    """The issues and partners a batch of issue events is about, in two direct statements;
    while the returned instances are held, :func:`issue_awaiting` finds them in the session
    without a query of its own.

    The issues are locked until the transaction ends, in the order of their ids (so two
    batches cannot deadlock): a PSA's update to one of them (see
    ``services.intake.issue_updates``) waits, and then sees the status this batch wrote,
    instead of this batch overwriting the status the PSA set.
    """
    events = [e.data for e in envelopes if isinstance(e.data, IssueEvent)]
    if not events:
        return ()
    session = uow.session
    statements = await joined(session)
    dialect = statements.dialect
    issues = await statements.fetch(
        _issues_by_id, {"keys": listed_ids(sorted(e.issue_id for e in events), dialect)}
    )
    partners = await statements.fetch(
        _partners_by_id, {"keys": listed_ids((e.partner_id for e in events), dialect)}
    )
    return loaded(session, Issue, issues), loaded(session, Partner, partners)


def _issues_by_id(dialect: str) -> ClauseElement:
    return keyed(table_of(Issue), "id", dialect, locked=True)


def _partners_by_id(dialect: str) -> ClauseElement:
    return keyed(table_of(Partner), "id", dialect)


# What a transition writes besides the status, as the caller gives it (see :func:`advance`).
WRITTEN_WITH_STATUS = ("severity", "microsoft_request_id")


def advance(
    session: AsyncSession,
    issue: Issue,
    status: IssueStatus,
    *,
    detail: str,
    at: datetime,
    service: str,
    note: str | None = None,
    changes: Mapping[str, Any] | None = None,
    event: IssueEvent | None = None,
) -> None:
    """Move the issue to ``status``, add the step to its timeline and queue ``issues.updated``,
    in the caller's transaction. :class:`IllegalTransition` if the lifecycle forbids it.

    ``event`` is what the caller announces the step by (its ``issues.classified`` or
    ``issues.routed``); it is queued too, in one outbox row with the ``issues.updated``.

    The row's update is staged, with ``changes`` to the columns of :data:`WRITTEN_WITH_STATUS`
    and the issue's own values of the others; the instance shows the new values at once, as
    written, so the session does not write them a second time.
    """
    current = IssueStatus(issue.status)
    if status not in TRANSITIONS[current]:
        raise IllegalTransition(current, status)
    if changes and (unknown := set(changes) - set(WRITTEN_WITH_STATUS)):
        raise KeyError(f"{sorted(unknown)} are not written with an issue's status")
    _move(
        session,
        issue,
        status,
        changes or {},
        detail=detail,
        note=note,
        at=at,
        service=service,
        event=event,
    )


def reopen(
    session: AsyncSession,
    issue: Issue,
    *,
    detail: str,
    note: str | None,
    at: datetime,
    service: str,
) -> None:
    """Move a routed issue back to ``received``, to be classified again, with a timeline step
    and ``issues.updated``; :class:`IllegalTransition` from any other status. Not in
    :data:`TRANSITIONS`, which a PSA's status follows: the caller checks that the routing may
    be replaced (it filed and handed off nothing)."""
    if issue.status != IssueStatus.ROUTED:
        raise IllegalTransition(IssueStatus(issue.status), IssueStatus.RECEIVED)
    _move(
        session, issue, IssueStatus.RECEIVED, {}, detail=detail, note=note, at=at, service=service
    )


def _move(
    session: AsyncSession,
    issue: Issue,
    status: IssueStatus,
    changes: Mapping[str, Any],
    *,
    detail: str,
    note: str | None,
    at: datetime,
    service: str,
    event: IssueEvent | None = None,
) -> None:
    written = {key: getattr(issue, key) for key in WRITTEN_WITH_STATUS}
    written |= {**changes, "status": status, "updated_at": at}
    for key, value in written.items():
        set_committed_value(issue, key, value)
    stage(session, _update_issue, {"issue_id": issue.id, **written})
    _announce(
        session, issue, detail=detail, note=note or detail, at=at, service=service, event=event
    )


def _update_issue(dialect: str) -> ClauseElement:
    return updated(
        table_of(Issue), "id", "status", "updated_at", *WRITTEN_WITH_STATUS, by="issue_id"
    )


def add_note(session: AsyncSession, issue: Issue, note: str, *, at: datetime, service: str) -> None:
    """A timeline step in the issue's current status, and ``issues.updated`` with the note."""
    _announce(session, issue, detail=note, note=note, at=at, service=service)


def insert_step(dialect: str) -> ClauseElement:
    """One timeline step; staged, or on the driver connection, never an ORM object."""
    return inserted(table_of(TimelineEntry), "issue_id", "status", "detail", "at")


def _announce(
    session: AsyncSession,
    issue: Issue,
    *,
    detail: str,
    note: str,
    at: datetime,
    service: str,
    event: IssueEvent | None = None,
) -> None:
    status = IssueStatus(issue.status)
    step = {"issue_id": issue.id, "status": status, "detail": detail, "at": at}
    stage(session, insert_step, step)
    lifecycle = IssueUpdated(
        issue_id=issue.id, partner_id=issue.partner_id, status=status, note=note, updated_at=at
    )
    if event is None:
        enqueue(session, lifecycle, service=service)
    else:
        enqueue(session, event, service=service, companion=lifecycle)
