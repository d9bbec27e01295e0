"""``Idempotency-Key``: same key and body replay the first answer; another body is a conflict."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from services.intake.problems import Problem
from shared.db.models import IdempotencyRecord
from shared.db.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: dict[str, Any]


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def replay(
    uow: UnitOfWork, *, partner_id: uuid.UUID, key: str, body_hash: str
) -> StoredAnswer | None:
    record = await uow.session.get(IdempotencyRecord, (partner_id, key))
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise Problem(409, "This Idempotency-Key was used with a different request body.")
    return StoredAnswer(record.status_code, record.response)


def remember(
    uow: UnitOfWork, *, partner_id: uuid.UUID, key: str, body_hash: str, answer: StoredAnswer
) -> None:
    """Store the answer in the same transaction as the effect it describes."""
    uow.session.add(
        IdempotencyRecord(
            partner_id=partner_id,
            key=key,
            request_hash=body_hash,
            status_code=answer.status_code,
            response=answer.body,
        )
    )
