"""What a transaction learned and may keep until it ends, kept on its session.

A batch transaction holding a lock may remember what the lock protects (a key it holds, the
open cluster behind it, a row it wrote) instead of reading it again for every event. The
memory must not outlive the transaction: a batch that fails is rolled back and handled again
in new transactions, which must read afresh. So each memory is tied to the session's current
transaction and starts empty in the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def transaction_scoped(session: AsyncSession, name: str, empty: Callable[[], T]) -> T:
    """The session's memory called ``name`` for its current transaction: ``empty()`` when the
    transaction is new (or there is none yet)."""
    transaction = session.sync_session.get_transaction()
    owner, kept = session.info.get(name, (None, None))
    if transaction is None or owner is not transaction:
        kept = empty()
        session.info[name] = (transaction, kept)
    return cast(T, kept)
