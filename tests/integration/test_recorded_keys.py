"""The Idempotency-Key records of concurrent requests, read together, on both databases."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.recorded_keys import RecordedKeys
from shared.db.base import utcnow
from shared.db.direct import Direct
from shared.db.engine import create_session_factory
from shared.db.models import IdempotencyRecord
from tests.support.factories import seed_partner


async def test_each_request_gets_its_own_partners_record_of_its_key(
    database_url: str, engine: AsyncEngine
) -> None:
    """Read in one batch: a key is found only for the partner that recorded it (two partners
    used the same key), and a key nobody recorded is None."""
    first, second = await seed_partner(database_url), await seed_partner(database_url)
    async with create_session_factory(engine)() as session:
        for partner, key, status in (
            (first, "k-1", 202),
            (second, "k-1", 200),
            (second, "k-2", 201),
        ):
            session.add(
                IdempotencyRecord(
                    partner_id=partner.id,
                    key=key,
                    request_hash=f"{partner.id}-{key}",
                    status_code=status,
                    response={"status": status},
                    location=f"/v1/issues/{key}",
                )
            )
        await session.commit()
    keys = RecordedKeys(Direct(engine), max_batch=16, linger_s=0.01)
    asked = [(first.id, "k-1"), (second.id, "k-1"), (first.id, "k-2"), (second.id, "k-2")]
    found = await asyncio.gather(*(keys.find(partner, key) for partner, key in asked))
    await keys.aclose()

    assert [None if f is None else f.status_code for f in found] == [202, 200, None, 201]
    assert found[0] is not None
    assert found[0].request_hash == f"{first.id}-k-1"
    assert found[0].response == {"status": 202}
    assert found[0].location == "/v1/issues/k-1"
    assert found[0].created_at <= utcnow()
