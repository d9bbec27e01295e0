"""``Idempotency-Key`` on every POST.

For 24 hours the same key with the same request (method, path and body) replays the first
answer; with another request it answers 409. The answer is stored in the same transaction as
the effect it describes, so a key is never remembered for an effect that did not happen, nor
the other way round. Two concurrent requests with one key: the loser's transaction fails on the
key's primary key, is rolled back, and replays the winner's answer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ClauseElement

from services.intake.problems import Problem
from services.intake.recorded_keys import Recorded
from shared.db.base import table_of, utcnow
from shared.db.direct import Direct, DirectStatements, DirectWork, bound
from shared.db.models import IdempotencyRecord
from shared.db.uow import UnitOfWork, UnitOfWorkFactory

KEY_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: dict[str, Any]
    location: str | None = None
    replayed: bool = False

    def response(self) -> JSONResponse:
        headers = {"Location": self.location} if self.location else {}
        if self.replayed:
            headers["Idempotent-Replayed"] = "true"
        return _Answer(self.body, status_code=self.status_code, headers=headers)


class _Answer(JSONResponse):
    """The bytes Starlette's ``JSONResponse`` writes (compact, UTF-8), by orjson: every
    accept answers with one."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """The ``Idempotency-Key`` of a POST and what identifies the request it was sent with."""

    key: str | None
    method: str
    path: str

    def request_hash(self, body: Any) -> str:
        """What the key's record keeps of the request; nothing without a key (no record)."""
        return fingerprint(self.method, self.path, body) if self.key else ""

    async def run(
        self,
        uow_factory: UnitOfWorkFactory,
        partner_id: uuid.UUID,
        body: Any,
        produce: Callable[[UnitOfWork], Awaitable[StoredAnswer]],
    ) -> StoredAnswer:
        """``produce`` under this key; ``body`` is the request body as JSON data (or None)."""
        return await respond(
            uow_factory,
            partner_id=partner_id,
            key=self.key,
            request_hash=self.request_hash(body),
            produce=produce,
        )

    async def run_direct(
        self,
        direct: Direct,
        partner_id: uuid.UUID,
        body: Any,
        produce: Callable[[DirectStatements], Awaitable[StoredAnswer]],
    ) -> StoredAnswer:
        """:meth:`run` for a ``produce`` working on the driver connection."""
        key, request_hash = self.key, self.request_hash(body)

        async def attempt() -> StoredAnswer:
            async with direct.work() as work:
                if key:
                    stored = await _replay_direct(work, partner_id, key, request_hash)
                    if stored is not None:
                        return stored
                answer = await produce(work)
                if key:
                    await work.execute(
                        insert_record, _record(partner_id, key, request_hash, answer)
                    )
                await work.commit()
                return answer

        return await _once_more_if_raced(attempt)

    def replay(self, recorded: Recorded | None, body: Any) -> StoredAnswer | None:
        """The answer this key's request was given, from its ``recorded`` record read before
        (:class:`~services.intake.recorded_keys.RecordedKeys`): a replay, or a 409 for another
        request; None when the key is new or its record has expired (forgotten by the
        transaction that then records it, :meth:`run_direct`)."""
        if recorded is None or _expired(recorded.created_at):
            return None
        return _replayed(
            recorded.request_hash,
            self.request_hash(body),
            recorded.status_code,
            recorded.response,
            recorded.location,
        )

    def record(self, partner_id: uuid.UUID, body: Any, answer: StoredAnswer) -> dict[str, Any]:
        """The key's record of ``answer``, to be written in the transaction of its effect
        (:func:`insert_record`). Only with a key."""
        assert self.key is not None
        return _record(partner_id, self.key, self.request_hash(body), answer)


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique printable string (a UUID is best). For 24 hours the same "
        "key with the same request replays the first answer (with `Idempotent-Replayed: "
        "true`); with another request it answers 409.",
    ),
]


def of_request(request: Request, key: str | None) -> IdempotentRequest:
    # Only a key's record keeps the path (building the request's URL costs on every accept).
    path = request.url.path if key is not None else ""
    return IdempotentRequest(key, request.method, path)


async def idempotent_request(
    request: Request, idempotency_key: IdempotencyKey = None
) -> IdempotentRequest:
    return of_request(request, idempotency_key)


IdempotencyDep = Annotated[IdempotentRequest, Depends(idempotent_request)]


def fingerprint(method: str, path: str, body: Any) -> str:
    request = {"method": method, "path": path, "body": body}
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def respond(
    uow_factory: UnitOfWorkFactory,
    *,
    partner_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    produce: Callable[[UnitOfWork], Awaitable[StoredAnswer]],
) -> StoredAnswer:
    """Run ``produce`` (which must not commit) in one transaction with the key's record."""

    async def attempt() -> StoredAnswer:
        async with uow_factory() as uow:
            if key:
                stored = await _replay(uow, partner_id, key, request_hash)
                if stored is not None:
                    return stored
            answer = await produce(uow)
            if key:
                uow.session.add(IdempotencyRecord(**_record(partner_id, key, request_hash, answer)))
            await uow.commit()
            return answer

    return await _once_more_if_raced(attempt)


async def _once_more_if_raced(attempt: Callable[[], Awaitable[StoredAnswer]]) -> StoredAnswer:
    """A concurrent request with the same key committed first (the key's primary key failed):
    the second attempt replays its answer."""
    try:
        return await attempt()
    except IntegrityError:
        return await attempt()


async def _replay(
    uow: UnitOfWork, partner_id: uuid.UUID, key: str, request_hash: str
) -> StoredAnswer | None:
    record = await uow.session.get(IdempotencyRecord, (partner_id, key))
    if record is None:
        return None
    if _expired(record.created_at):
        await uow.session.delete(record)
        await uow.session.flush()
        return None
    return _replayed(
        record.request_hash, request_hash, record.status_code, record.response, record.location
    )


async def _replay_direct(
    work: DirectWork, partner_id: uuid.UUID, key: str, request_hash: str
) -> StoredAnswer | None:
    ids = {"partner_id": partner_id, "key": key}
    found = await work.fetch(_lookup, ids)
    if not found:
        return None
    stored_hash, status_code, response, location, created_at = found[0]
    if _expired(created_at):
        await work.execute(_forget, ids)
        return None
    return _replayed(stored_hash, request_hash, status_code, response, location)


def _expired(created_at: datetime) -> bool:
    return created_at < utcnow() - KEY_TTL


def _replayed(
    stored_hash: str,
    request_hash: str,
    status_code: int,
    response: dict[str, Any],
    location: str | None,
) -> StoredAnswer:
    if stored_hash != request_hash:
        raise Problem(409, "This Idempotency-Key was used with a different request.")
    return StoredAnswer(status_code, dict(response), location, replayed=True)


def _record(
    partner_id: uuid.UUID, key: str, request_hash: str, answer: StoredAnswer
) -> dict[str, Any]:
    return {
        "partner_id": partner_id,
        "key": key,
        "request_hash": request_hash,
        "status_code": answer.status_code,
        "response": answer.body,
        "location": answer.location,
        "created_at": utcnow(),
    }


def _lookup(dialect: str) -> ClauseElement:
    record = table_of(IdempotencyRecord)
    return select(
        record.c.request_hash,
        record.c.status_code,
        record.c.response,
        record.c.location,
        record.c.created_at,
    ).where(record.c.partner_id == bindparam("partner_id"), record.c.key == bindparam("key"))


def _forget(dialect: str) -> ClauseElement:
    record = table_of(IdempotencyRecord)
    return delete(record).where(
        record.c.partner_id == bindparam("partner_id"), record.c.key == bindparam("key")
    )


def insert_record(dialect: str) -> ClauseElement:
    """A key's record; a key recorded already fails on its primary key."""
    return insert(table_of(IdempotencyRecord)).values(
        **bound(
            "partner_id", "key", "request_hash", "status_code", "response", "location", "created_at"
        )
    )


async def purge_expired(uow_factory: UnitOfWorkFactory) -> int:
    """Forget keys older than 24 hours."""
    async with uow_factory() as uow:
        result = await uow.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEY_TTL)
        )
        await uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)
