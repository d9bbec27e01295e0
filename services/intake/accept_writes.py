"""The accept's writes: the issue, its first timeline step and its ``IssueReceived`` outbox row.

On PostgreSQL the three are one statement: the issue's ``INSERT … ON CONFLICT DO NOTHING`` in a
CTE, the step and the outbox row inserted from what it returned. They cost one round trip, and
a ticket that is already an issue writes nothing. SQLite has no data-modifying CTEs; there they
are three statements in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, bindparam, func, insert, select
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of
from shared.db.direct import DirectStatements, DirectWork, bound
from shared.db.models import Issue, OutboxMessage
from shared.db.models import IssueEvent as TimelineEntry
from shared.db.upsert import insert_ignoring
from shared.events.models import IssueReceived
from shared.issue_state import insert_step
from shared.kafka.outbox import OUTBOX_COLUMNS, enqueue_direct, outbox_row
from shared.vocabulary import IssueStatus

# What an accepted issue's row is given; the other columns keep their defaults.
ISSUE_COLUMNS = (
    "id",
    "partner_id",
    "customer_id",
    "tenant_id",
    "external_ref",
    "title",
    "description",
    "service",
    "region",
    "category",
    "severity",
    "locale",
    "contact",
    "status",
    "created_at",
    "updated_at",
)
_STEP_COLUMNS = ("status", "detail", "at")
# The step's and the outbox row's parameters are prefixed: their columns share names with the
# issue's, and one statement carries all three.
_STEP = "step_"
_QUEUED = "queued_"


def one_statement(dialect: str) -> bool:
    """Whether :func:`store` writes in one statement on ``dialect`` (then it needs no
    transaction of its own)."""
    return dialect == "postgresql"


async def store(work: DirectStatements, event: IssueReceived, *, service: str, detail: str) -> bool:
    """Write the issue, its first step (``detail``) and its event; False, with nothing
    written, when the partner's PSA ticket is already an issue. Where it takes more than
    one statement, ``work`` must be a transaction."""
    issue = _issue_row(event)
    step = {"status": IssueStatus.RECEIVED, "detail": detail, "at": event.received_at}
    if one_statement(work.dialect):
        queued = {**outbox_row(event, service=service), "created_at": event.received_at}
        values = {
            **issue,
            **{_STEP + key: value for key, value in step.items()},
            **{_QUEUED + key: value for key, value in queued.items()},
        }
        [(stored,)] = await work.fetch(_insert_all, values)
        return bool(stored)
    if not isinstance(work, DirectWork):
        raise TypeError("the issue, its step and its event are three statements here")
    if not await work.execute(_insert_issue, issue):
        return False
    await work.execute(insert_step, {"issue_id": event.issue_id, **step})
    await enqueue_direct(work, event, service=service)
    return True


def _issue_row(event: IssueReceived) -> dict[str, Any]:
    return {
        **event.model_dump(exclude={"issue_id", "received_at"}),
        "id": event.issue_id,
        "status": IssueStatus.RECEIVED,
        "created_at": event.received_at,
        "updated_at": event.received_at,
    }


def _insert_issue(dialect: str) -> Insert:
    """The database decides between two concurrent requests for the same ticket."""
    return insert_ignoring(dialect, table_of(Issue), ("partner_id", "external_ref")).values(
        **bound(*ISSUE_COLUMNS)
    )


def _insert_all(dialect: str) -> ClauseElement:
    """How many issues were inserted (0 or 1), the step and the outbox row only with one."""
    issues = table_of(Issue)
    added = _insert_issue(dialect).returning(issues.c.id).cte("added")
    steps = table_of(TimelineEntry)
    step = insert(steps).from_select(
        ["issue_id", *_STEP_COLUMNS],
        select(added.c.id, *_params(steps, _STEP_COLUMNS, _STEP)),
    )
    outbox = table_of(OutboxMessage)
    columns = (*OUTBOX_COLUMNS, "created_at")
    queued = insert(outbox).from_select(
        list(columns),
        select(*_params(outbox, columns, _QUEUED)).where(select(added.c.id).exists()),
    )
    return select(func.count()).select_from(added).add_cte(step.cte("step"), queued.cte("queued"))


def _params(table: Any, columns: tuple[str, ...], prefix: str) -> list[Any]:
    return [bindparam(prefix + name, type_=table.c[name].type) for name in columns]
