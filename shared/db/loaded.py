"""Rows read by direct statements, handed to a session as if its own query had loaded them.

An ORM query costs several times the driver's round trip (:mod:`shared.db.direct`). A batch
that reads its rows directly can still give its handlers ORM objects: each row becomes an
instance in the session's identity map, persistent and unchanged, so ``session.get`` finds it
without a query and a change to it is flushed as usual. :func:`get` finds it there without
even the greenlet switch that every ``AsyncSession`` call costs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

M = TypeVar("M", bound=DeclarativeBase)


def loaded(
    session: AsyncSession, model: type[M], rows: Iterable[Sequence[Any]], *, again: bool = False
) -> list[M]:
    """``rows``, each of all the columns of ``model``'s table in their order (``select(table)``),
    as instances in ``session``; a row whose instance the session already holds gives that
    instance, as a query would, and with ``again`` its values as read now (as a query with
    ``populate_existing`` would: a change not flushed yet is lost)."""
    keys = _attributes(model)
    key_of = _primary_key_positions(model)
    new_instance = inspect(model).class_manager.new_instance
    held = session.identity_map
    found = []
    for row in rows:
        present = held.get(identity_key(model, tuple(row[i] for i in key_of)))
        if present is not None:
            if again:
                for key, value in zip(keys, row, strict=True):
                    set_committed_value(present, key, value)
            found.append(present)
            continue
        # As the ORM's own loading does: the values go straight into the instance's dict, not
        # through the constructor, whose instrumented attribute sets record history for each
        # column (about 14 µs of a row's 25, measured alone) that is then thrown away.
        instance = cast(M, new_instance())
        instance.__dict__.update(zip(keys, row, strict=True))
        make_transient_to_detached(instance)
        session.add(instance)
        found.append(instance)
    return found


async def get(session: AsyncSession, model: type[M], key: Any) -> M | None:
    """``session.get(model, key)``. An instance the session holds loaded (not expired, not
    deleted), as :func:`loaded` leaves it, is taken from the identity map at once: each
    ``AsyncSession`` call runs in a greenlet of its own, and a new greenlet maps (and then
    unmaps) a fresh stack for its frames, a few microseconds per call paid per event."""
    instance = session.identity_map.get(identity_key(model, key))
    if instance is not None:
        state = inspect(instance)
        if not (state.expired or state.expired_attributes or state.deleted):
            return instance
    return await session.get(model, key)


@functools.cache
def _attributes(model: type[DeclarativeBase]) -> tuple[str, ...]:
    mapper = inspect(model)
    return tuple(mapper.get_property_by_column(c).key for c in mapper.local_table.columns)


@functools.cache
def _primary_key_positions(model: type[DeclarativeBase]) -> tuple[int, ...]:
    mapper = inspect(model)
    columns = list(mapper.local_table.columns)
    return tuple(next(i for i, c in enumerate(columns) if c is key) for key in mapper.primary_key)
