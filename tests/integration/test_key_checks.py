"""API keys checked together: each request gets its own key's answer, a revoked key is refused
from the next read on, and ``last_used_at`` records only keys that were really used."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.key_checks import KeyChecks
from shared.db.direct import Direct
from shared.security import parse_prefix
from tests.support.factories import SeededPartner, seed_partner


def prefix(partner: SeededPartner) -> str:
    found = parse_prefix(partner.api_key)
    assert found is not None
    return found


async def last_used(engine: AsyncEngine) -> dict[str, bool]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT prefix, last_used_at FROM api_keys"))
        return {row.prefix: row.last_used_at is not None for row in rows}


async def test_keys_checked_together_each_get_their_own_answer(
    database_url: str, engine: AsyncEngine
) -> None:
    ana, ben, eve = [await seed_partner(database_url) for _ in range(3)]
    checks = KeyChecks(Direct(engine), pepper="", max_batch=16)
    wrong_secret = eve.api_key[:-4] + "xxxx"
    unknown = "csp_000000000000_" + "a" * 43
    results = await asyncio.gather(
        checks.check(prefix(ana), ana.api_key),
        checks.check(prefix(eve), wrong_secret),
        checks.check(prefix(ben), ben.api_key),
        checks.check("000000000000", unknown),
        checks.check(prefix(ana), ana.api_key),
    )
    await checks.aclose()

    assert [key.partner_id if key else None for key in results] == [
        ana.id,
        None,
        ben.id,
        None,
        ana.id,
    ]
    # A guessed secret does not count as a use of the key it guessed at.
    assert await last_used(engine) == {prefix(ana): True, prefix(ben): True, prefix(eve): False}


async def test_a_key_revoked_between_two_reads_is_refused_by_the_second(
    database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    checks = KeyChecks(Direct(engine), pepper="", max_batch=16)
    assert await checks.check(prefix(partner), partner.api_key) is not None
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP"))
    assert await checks.check(prefix(partner), partner.api_key) is None
    await checks.aclose()
