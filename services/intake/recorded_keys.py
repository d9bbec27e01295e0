"""The ``Idempotency-Key`` records concurrent requests present, read together.

PSA integrations send a key with every ticket, so every such accept first asks whether its
key was answered before. Asked one request at a time, that is a pooled connection and a round
trip per accept; here the requests that arrive while one read is out share the next
(:mod:`shared.batching`). A read is what was committed when it ran: a key its request records
afterwards is caught by the record's primary key, in the transaction that writes it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.sql.expression import ClauseElement

from shared.batching import Batcher
from shared.db.base import table_of
from shared.db.direct import Direct
from shared.db.listed import listed_ids, paired
from shared.db.models import IdempotencyRecord

FIELDS = ("partner_id", "key", "request_hash", "status_code", "response", "location", "created_at")


class Recorded(NamedTuple):
    """A key's record: what its first request was, and the answer it was given."""

    request_hash: str
    status_code: int
    response: dict[str, Any]
    location: str | None
    created_at: datetime


class RecordedKeys:
    def __init__(self, reads: Direct, *, max_batch: int, linger_s: float = 0.0) -> None:
        self._reads = reads
        self._batcher: Batcher[tuple[uuid.UUID, str], Recorded | None] = Batcher(
            self._find_all, name="recorded_keys", max_batch=max_batch, linger_s=linger_s
        )

    async def find(self, partner_id: uuid.UUID, key: str) -> Recorded | None:
        """The partner's record of ``key``, or None."""
        return await self._batcher.submit((partner_id, key))

    async def aclose(self) -> None:
        await self._batcher.aclose()

    async def _find_all(self, asked: list[tuple[uuid.UUID, str]]) -> list[Recorded | None]:
        pairs = sorted(set(asked))
        async with self._reads.statements() as statements:
            rows = await statements.fetch(_by_key, _pairs(pairs, statements.dialect))
        found = {(row[0], row[1]): Recorded(*row[2:]) for row in rows}
        return [found.get(pair) for pair in asked]


def _pairs(pairs: list[tuple[uuid.UUID, str]], dialect: str) -> dict[str, list[Any]]:
    """Parameters of :func:`_by_key`: two lists in step on PostgreSQL, two sets on SQLite."""
    partners, keys = [p for p, _ in pairs], [k for _, k in pairs]
    if dialect == "postgresql":
        return {"partners": partners, "keys": keys}
    return {"partners": listed_ids(partners, dialect), "keys": sorted(set(keys))}


def _by_key(dialect: str) -> ClauseElement:
    """The records of parameter pairs ``partners`` and ``keys`` (see :func:`paired`)."""
    records = table_of(IdempotencyRecord)
    return paired(records, ("partner_id", "key"), ("partners", "keys"), dialect, chosen=FIELDS)
