"""The intake's accepts, written together (group commit); with an ``Idempotency-Key``, the key's
record in the same transaction.

Each request still gets its own answer only once its rows are committed; what the requests
share is the round trips, the pooled connection and, on PostgreSQL, the commit. A batch that
the database refuses as a whole for one accept's sake (a constraint) is written again one
accept at a time, so that only that accept's request fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from services.intake.accept_writes import AcceptRows, store_many
from shared.batching import Batcher
from shared.db.direct import Direct
from shared.kafka.outbox import OutboxRelay


class Accepts:
    def __init__(
        self,
        direct: Direct,
        *,
        max_batch: int,
        linger_s: float = 0.0,
        relay: OutboxRelay | None = None,
    ) -> None:
        self._direct = direct
        self._relay = relay
        self._batcher: Batcher[AcceptRows, bool] = Batcher(
            self._write, name="accepts", max_batch=max_batch, linger_s=linger_s
        )

    async def store(self, rows: AcceptRows) -> bool:
        """Store ``rows`` with whatever else is waiting; False when the PSA ticket is already
        an issue (nothing of ``rows`` was written)."""
        return await self._batcher.submit(rows)

    async def aclose(self) -> None:
        """Accept no more; return once every waiting accept is written."""
        await self._batcher.aclose()

    async def _write(self, batch: list[AcceptRows]) -> Sequence[bool | BaseException]:
        try:
            stored: list[bool] = await store_many(self._direct, batch, self._relay)
        except IntegrityError:
            if len(batch) == 1:
                raise
            return [await self._alone(rows) for rows in batch]
        return stored

    async def _alone(self, rows: AcceptRows) -> bool | IntegrityError:
        try:
            [stored] = await store_many(self._direct, [rows])
        except IntegrityError as exc:
            return exc
        return stored
