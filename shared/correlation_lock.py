"""The per-key row lock that serialises everyone who correlates on (partner, service, region).

A batch transaction may need several keys. Taken as its events come, two batches could each
hold a key the other waits for (the classifier's, correlating reports, and the notifier's,
reading whether a cluster is forming around an issue it escalates): PostgreSQL then aborts one
of them, and its events are handled again one transaction each. So a batch takes every key it
may need before it locks its issues, all in one order (:func:`lock_correlation_keys`), and a key
its transaction already holds is not locked again.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.db.base import table_of
from shared.db.listed import keyed, listed_ids
from shared.db.loaded import loaded
from shared.db.models import ClusterSignal, CorrelationKey
from shared.db.scoped import transaction_scoped
from shared.db.staged import joined
from shared.db.upsert import insert_if_absent, insert_ignoring

Key = tuple[uuid.UUID, str, str]  # partner id, service key, region key
# The keys the session's current transaction holds.
_HELD = "correlation_lock.held"
_KEY_COLUMNS = ("partner_id", "service_key", "region_key")


def correlation_key(service: str, region: str) -> tuple[str, str]:
    return service.strip().casefold(), region.strip().casefold()


async def lock_correlation_keys(session: AsyncSession, keys: Iterable[Key]) -> None:
    """Hold every one of ``keys`` until the transaction ends, taken in the database's sort
    order; two statements however many there are (their rows written where absent, then
    locked), none for keys the transaction holds already."""
    wanted = sorted(set(keys) - _held(session))
    if len(wanted) <= 1:
        for key in wanted:
            await lock_correlation_key(session, *key)
        return
    table = table_of(CorrelationKey)
    dialect = session.get_bind().dialect.name
    rows = [dict(zip(_KEY_COLUMNS, key, strict=True)) for key in wanted]
    await session.execute(insert_ignoring(dialect, table, _KEY_COLUMNS), rows)
    columns = [table.c[name] for name in _KEY_COLUMNS]
    # Locked as the sort returns them, in the order the rows were written (Python's: bytes).
    order = [c.collate("C") if dialect == "postgresql" else c for c in columns[1:]]
    await session.execute(
        select(table.c.partner_id)
        .where(tuple_(*columns).in_(wanted))
        .order_by(table.c.partner_id, *order)
        .with_for_update()
    )
    _held(session).update(wanted)


async def lock_correlation_key(
    session: AsyncSession, partner_id: uuid.UUID, service_key: str, region_key: str
) -> None:
    """Hold the key's row until the transaction ends (SQLite: its write lock already does);
    nothing to do if this transaction holds it already."""
    key = (partner_id, service_key, region_key)
    if key in _held(session):
        return
    await _lock(session, *key)
    # Looked up again: a transaction that had not begun has begun with the lock.
    _held(session).add(key)


def _held(session: AsyncSession) -> set[Key]:
    """The keys the session's current transaction holds (none in a new one)."""
    return transaction_scoped(session, _HELD, set[Key])


async def _lock(
    session: AsyncSession, partner_id: uuid.UUID, service_key: str, region_key: str
) -> None:
    values = {"partner_id": partner_id, "service_key": service_key, "region_key": region_key}
    await insert_if_absent(session, CorrelationKey, values, conflict=list(values))
    await session.execute(
        select(CorrelationKey.partner_id)
        .where(
            CorrelationKey.partner_id == partner_id,
            CorrelationKey.service_key == service_key,
            CorrelationKey.region_key == region_key,
        )
        .with_for_update()
    )


async def read_signals(
    session: AsyncSession, issue_ids: Collection[uuid.UUID], *, again: bool = False
) -> list[ClusterSignal]:
    """The cluster signals of ``issue_ids``, in one direct statement, as instances of the
    session (``again``: read again, as they are now). Read while their keys are held, their
    clusters stay as read until the transaction ends."""
    statements = await joined(session)
    keys = {"keys": listed_ids(issue_ids, statements.dialect)}
    rows = await statements.fetch(_signals, keys)
    return loaded(session, ClusterSignal, rows, again=again)


def _signals(dialect: str) -> ClauseElement:
    return keyed(table_of(ClusterSignal), "issue_id", dialect)
