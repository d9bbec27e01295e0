"""The outbox relay drops sent rows written (or re-driven) longer ago than the retention, in
bounded transactions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.base import utcnow
from shared.db.direct import Direct
from shared.db.models import OutboxMessage, OutboxPending
from shared.kafka.outbox import OutboxRelay
from shared.settings import KafkaSettings, OutboxSettings
from tests.support.factories import queued_updates, rows


async def test_sent_rows_past_the_retention_go_in_chunks_and_nothing_else_does(
    engine: AsyncEngine, database_url: str
) -> None:
    uows, _, ids = await queued_updates(engine, database_url, 8)
    now = utcnow()
    long_ago = now - timedelta(hours=3)  # past the retention
    written = {
        **dict.fromkeys(ids[:4], long_ago),
        ids[4]: now - timedelta(minutes=10),  # sent, kept for re-drives
        ids[5]: now - timedelta(days=30),  # never sent, kept whatever its age
        ids[6]: long_ago,  # re-driven since: kept as long as a row written then
    }  # ids[7]: sent just now
    async with uows() as uow:
        for event_id, at in written.items():
            await uow.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.event_id == event_id)
                .values(created_at=at)
            )
        await uow.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.event_id == ids[6])
            .values(redriven_at=now - timedelta(minutes=5))
        )
        await uow.session.execute(
            delete(OutboxPending).where(
                OutboxPending.id.in_(
                    select(OutboxMessage.id).where(OutboxMessage.event_id != ids[5])
                )
            )
        )
        await uow.commit()

    relay = OutboxRelay(
        uows,
        Direct(engine),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never reached
        settings=OutboxSettings(retention_h=1),
        service="test",
    )
    assert await relay.delete_sent(chunk=3) == 4  # 3, then 1: fewer than a chunk, done
    assert await relay.delete_sent(chunk=3) == 0
    left = await rows(engine, "SELECT event_id FROM outbox ORDER BY id")
    assert [row.event_id for row in left] == ids[4:]
