"""API-key checks, the keys of concurrent requests read together.

Every request's key is read from the database after the request arrived, so a revoked key is
refused from its next request on; there is no cache. The requests that arrive while one read is
out share the next one (:mod:`shared.batching`): one pooled connection and one round trip for
the lot, and one ``last_used_at`` write per key and minute instead of one per request that
found it stale.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import String, bindparam, select, update
from sqlalchemy.sql.expression import ClauseElement

from shared.batching import Batcher
from shared.db.base import table_of, utcnow
from shared.db.direct import Direct
from shared.db.listed import among
from shared.db.models import ApiKey
from shared.security import verify_key

LAST_USED_RESOLUTION = timedelta(minutes=1)


class Key(NamedTuple):
    id: uuid.UUID
    partner_id: uuid.UUID
    role: str
    key_hash: str
    revoked_at: datetime | None
    last_used_at: datetime | None
    prefix: str


@dataclass(frozen=True, slots=True)
class _Presented:
    prefix: str
    token: str


class KeyChecks:
    def __init__(
        self,
        direct: Direct,
        *,
        pepper: str,
        max_batch: int,
        linger_s: float = 0.0,
        reads: Direct | None = None,
    ) -> None:
        """``direct`` writes a key's ``last_used_at``; ``reads`` (``direct`` unless given)
        reads the keys."""
        self._direct = direct
        self._reads = reads or direct
        self._pepper = pepper
        self._batcher: Batcher[_Presented, Key | None] = Batcher(
            self._check_all, name="key_checks", max_batch=max_batch, linger_s=linger_s
        )

    async def check(self, prefix: str, token: str) -> Key | None:
        """The key ``token`` (whose prefix is ``prefix``) if it is known, not revoked and
        its secret matches; else None."""
        return await self._batcher.submit(_Presented(prefix, token))

    async def aclose(self) -> None:
        await self._batcher.aclose()

    async def _check_all(self, presented: list[_Presented]) -> list[Key | None]:
        prefixes = sorted({p.prefix for p in presented})
        async with self._reads.statements() as statements:
            rows = await statements.fetch(_keys_by_prefix, {"prefixes": prefixes})
        keys = {key.prefix: key for key in (Key(*row) for row in rows)}
        valid = [self._valid(keys.get(p.prefix), p.token) for p in presented]
        now = utcnow()
        used = {
            key.id
            for key in valid
            if key is not None
            and (key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION)
        }
        if used:
            # Bookkeeping, committed on its own, not part of any request's work.
            async with self._direct.statements() as statements:
                await statements.executemany(
                    _key_used, [{"key_id": key_id, "used_at": now} for key_id in sorted(used)]
                )
        return valid

    def _valid(self, key: Key | None, token: str) -> Key | None:
        if key is None or key.revoked_at is not None:
            return None
        return key if verify_key(token, key.key_hash, pepper=self._pepper) else None


def _keys_by_prefix(dialect: str) -> ClauseElement:
    keys = table_of(ApiKey)
    return select(*(keys.c[name] for name in Key._fields)).where(
        among(keys.c.prefix, "prefixes", dialect, String)
    )


def _key_used(dialect: str) -> ClauseElement:
    keys = table_of(ApiKey)
    return (
        update(keys)
        .where(keys.c.id == bindparam("key_id"))
        .values(last_used_at=bindparam("used_at"))
    )
