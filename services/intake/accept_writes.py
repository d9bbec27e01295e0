"""The accept's writes: the issue, its first timeline step and its ``IssueReceived`` outbox row.

On PostgreSQL the three are one statement: the issue's ``INSERT … ON CONFLICT DO NOTHING`` in a
CTE, the step and the outbox row inserted from what it returned. They cost one round trip, and
a ticket that is already an issue writes nothing. SQLite has no data-modifying CTEs; there they
are three statements in the same transaction.

:func:`store_many` writes the accepts of many requests at once (see
:mod:`services.intake.accepts`): one transaction and a fixed number of round trips per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Integer, bindparam, cast, func, insert, select
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.sql.selectable import TableValuedAlias

from services.intake.idempotency import insert_record
from shared.db.base import table_of
from shared.db.columnar import ORDINAL, by_column
from shared.db.direct import Direct, DirectStatements, DirectWork, bound
from shared.db.listed import among, listed_ids
from shared.db.models import Issue, OutboxMessage
from shared.db.models import IssueEvent as TimelineEntry
from shared.db.upsert import insert_ignoring
from shared.events.models import IssueReceived
from shared.issue_state import insert_step
from shared.kafka.outbox import (
    OUTBOX_COLUMNS,
    OutboxRelay,
    insert_outbox,
    leased,
    outbox_row,
)
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
    "psa_type",
    "severity",
    "locale",
    "contact",
    "status",
    "created_at",
    "updated_at",
)
# A partner's PSA ticket is one issue: the key two accepts of it conflict on.
_TICKET = ("partner_id", "external_ref")
_STEP_COLUMNS = ("status", "detail", "at")
_QUEUED_COLUMNS = (*OUTBOX_COLUMNS, "created_at")
# The step's and the outbox row's parameters are prefixed: their columns share names with the
# issue's, and one statement carries all three.
_STEP = "step_"
_QUEUED = "queued_"


def one_statement(dialect: str) -> bool:
    """Whether :func:`store` writes in one statement on ``dialect`` (then it needs no
    transaction of its own)."""
    return dialect == "postgresql"


@dataclass(frozen=True, slots=True)
class AcceptRows:
    """One accepted issue's three rows. Made in the request that accepts it: the outbox row
    carries that request's trace."""

    issue: dict[str, Any]
    step: dict[str, Any]
    queued: dict[str, Any]
    # The request's ``Idempotency-Key`` record, written with the issue (and not without it).
    record: dict[str, Any] | None = None

    @property
    def issue_id(self) -> uuid.UUID:
        issue_id: uuid.UUID = self.issue["id"]
        return issue_id

    def combined(self, queued: dict[str, Any] | None = None) -> dict[str, Any]:
        """The parameters of the one-statement write (:func:`_insert_all`), with ``queued`` as
        the outbox row if given."""
        return {
            **self.issue,
            **{_STEP + key: value for key, value in self.step.items()},
            **{_QUEUED + key: value for key, value in (queued or self.queued).items()},
        }


def accept_rows(
    event: IssueReceived, *, service: str, detail: str, record: dict[str, Any] | None = None
) -> AcceptRows:
    """The rows that store ``event``, its first step (``detail``) and its outbox row, and the
    ``Idempotency-Key`` ``record`` of the request if it has one."""
    return AcceptRows(
        issue=_issue_row(event),
        step={"status": IssueStatus.RECEIVED, "detail": detail, "at": event.received_at},
        queued={**outbox_row(event, service=service), "created_at": event.received_at},
        record=record,
    )


async def store(work: DirectStatements, rows: AcceptRows) -> bool:
    """Write the issue, its first step and its event; False, with nothing written, when the
    partner's PSA ticket is already an issue. Where it takes more than one statement, ``work``
    must be a transaction."""
    if one_statement(work.dialect):
        [(stored, _)] = await work.fetch(_insert_all, rows.combined())
        return bool(stored)
    if not isinstance(work, DirectWork):
        raise TypeError("the issue, its step and its event are three statements here")
    if not await work.execute(_insert_issue, rows.issue):
        return False
    await work.execute(insert_step, {"issue_id": rows.issue_id, **rows.step})
    await work.execute(insert_outbox, rows.queued)
    return True


async def store_many(
    direct: Direct, batch: Sequence[AcceptRows], relay: OutboxRelay | None = None
) -> list[bool]:
    """Write every accept of ``batch`` in one transaction, all or none; for each, whether it
    was stored (False: its PSA ticket was already an issue, perhaps by an earlier accept of the
    same batch). Where ``relay`` takes them (:meth:`OutboxRelay.lease`; PostgreSQL only), the
    outbox rows are written leased to it and handed to it once committed; otherwise the relay is
    woken once."""
    # Only the one-statement write returns the outbox rows' ids in the same round trip.
    one = one_statement(direct.dialect)
    lease = relay.lease() if relay is not None and one else None
    queued = [rows.queued if lease is None else leased(rows.queued, lease) for rows in batch]
    handed: list[tuple[int, dict[str, Any]]] = []
    if one:
        written = await _write_one_statement_each(direct, batch, queued)
        handed = [(row_id, q) for q, (_, row_id) in zip(queued, written, strict=True) if row_id]
        stored = [bool(count) for count, _ in written]
    else:
        ids = [rows.issue_id for rows in batch]
        async with direct.work() as work:
            await work.executemany(_insert_issue, [rows.issue for rows in batch])
            found = await _stored(work, ids)
            both = zip(batch, queued, strict=True)
            kept = [(rows, q) for rows, q in both if rows.issue_id in found]
            steps = [{"issue_id": rows.issue_id, **rows.step} for rows, _ in kept]
            await work.executemany(insert_step, steps)
            await work.executemany(insert_outbox, [q for _, q in kept])
            stored = [issue_id in found for issue_id in ids]
            await _record_keys(work, batch, stored)
            await work.commit(announce=False)
    if lease is not None and relay is not None:
        relay.hand(handed)
    else:
        direct.committed()
    return stored


async def _write_one_statement_each(
    direct: Direct, batch: Sequence[AcceptRows], queued: list[dict[str, Any]]
) -> list[Any]:
    """Each accept's one statement (:func:`_insert_all`): how many issues it inserted and the id
    of its outbox row. With ``Idempotency-Key`` records to write too, in a transaction of its
    own; without, asyncpg sends the lot in one round trip, in one implicit transaction."""
    combined = [rows.combined(q) for rows, q in zip(batch, queued, strict=True)]
    if not any(rows.record for rows in batch):
        async with direct.statements() as statements:
            return await statements.fetchmany(_insert_all, combined)
    async with direct.work() as work:
        written = await work.fetchmany(_insert_all, combined)
        await _record_keys(work, batch, [bool(count) for count, _ in written])
        await work.commit(announce=False)
    return written


async def _record_keys(work: DirectWork, batch: Sequence[AcceptRows], stored: list[bool]) -> None:
    """The ``Idempotency-Key`` records of the accepts stored; a key recorded meanwhile fails
    the transaction (IntegrityError). An accept whose ticket was already an issue records
    nothing: its request answers with that issue, and records its key then."""
    records = [
        rows.record for rows, kept in zip(batch, stored, strict=True) if kept and rows.record
    ]
    if records:
        await work.executemany(insert_record, records)


async def _stored(work: DirectWork, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are issues: an accepted issue's id is new, so the ones just stored.
    Only where the accept is three statements (SQLite)."""
    values = listed_ids(ids, work.dialect)
    return {issue_id for (issue_id,) in await work.fetch(_issues_among, {"ids": values})}


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
    return insert_ignoring(dialect, table_of(Issue), _TICKET).values(**bound(*ISSUE_COLUMNS))


def _issues_among(dialect: str) -> ClauseElement:
    """The ids of ``ids`` (a JSON array) that are issues."""
    issues = table_of(Issue)
    return select(issues.c.id).where(among(issues.c.id, "ids", dialect))


def _insert_all(dialect: str) -> ClauseElement:
    """How many issues were inserted (0 or 1) and the id of the outbox row (None without an
    issue); the step and the outbox row only with one. The accepts of a batch go as one
    statement on PostgreSQL (:func:`_insert_every`)."""
    issues = table_of(Issue)
    added = _insert_issue(dialect).returning(issues.c.id).cte("added")
    steps = table_of(TimelineEntry)
    step = insert(steps).from_select(
        ["issue_id", *_STEP_COLUMNS],
        select(added.c.id, *_params(steps, _STEP_COLUMNS, _STEP)),
    )
    outbox = table_of(OutboxMessage)
    queued = (
        insert(outbox)
        .from_select(
            list(_QUEUED_COLUMNS),
            select(*_params(outbox, _QUEUED_COLUMNS, _QUEUED)).where(select(added.c.id).exists()),
        )
        .returning(outbox.c.id)
        .cte("queued")
    )
    statement = select(
        select(func.count()).select_from(added).scalar_subquery(),
        select(queued.c.id).scalar_subquery(),
    ).add_cte(step.cte("step"), queued)
    return by_column(statement, _insert_every)


def _insert_every(_one: object, rows: TableValuedAlias) -> ClauseElement:
    """:func:`_insert_all` for every accept of ``rows`` at once: for each, in their order, how
    many issues it inserted and its outbox row's id. A ticket given twice is stored by the
    first (the issues are inserted in the order given)."""
    given = select(rows).cte("given")
    issues = table_of(Issue)
    added = (
        insert_ignoring("postgresql", issues, _TICKET)
        .from_select(
            list(ISSUE_COLUMNS),
            select(*(given.c[name] for name in ISSUE_COLUMNS)).order_by(given.c[ORDINAL]),
        )
        .returning(issues.c.id)
        .cte("added")
    )
    stored = select(given).join(added, added.c.id == given.c.id).subquery("stored")
    steps = table_of(TimelineEntry)
    step = insert(steps).from_select(
        ["issue_id", *_STEP_COLUMNS],
        select(stored.c.id, *(stored.c[_STEP + name] for name in _STEP_COLUMNS)),
    )
    outbox = table_of(OutboxMessage)
    queued = (
        insert(outbox)
        .from_select(
            list(_QUEUED_COLUMNS),
            select(*(stored.c[_QUEUED + name] for name in _QUEUED_COLUMNS)).order_by(
                stored.c[ORDINAL]
            ),
        )
        .returning(outbox.c.id, outbox.c.event_id)
        .cte("queued")
    )
    return (
        select(cast(queued.c.id.is_not(None), Integer), queued.c.id)
        .select_from(given.outerjoin(queued, queued.c.event_id == given.c[_QUEUED + "event_id"]))
        .order_by(given.c[ORDINAL])
        .add_cte(step.cte("step"), queued)
    )


def _params(table: Any, columns: tuple[str, ...], prefix: str) -> list[Any]:
    return [bindparam(prefix + name, type_=table.c[name].type) for name in columns]
