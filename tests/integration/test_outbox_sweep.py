"""The outbox relay drops rows sent longer ago than the retention, in bounded transactions."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.base import utcnow
from shared.db.direct import Direct
from shared.db.models import OutboxMessage
from shared.kafka.outbox import OutboxRelay
from shared.settings import KafkaSettings, OutboxSettings
from tests.support.factories import queued_updates, rows


async def test_sent_rows_past_the_retention_go_in_chunks_and_nothing_else_does(
    engine: AsyncEngine, database_url: str
) -> None:
    uows, _, ids = await queued_updates(engine, database_url, 6)
    now = utcnow()
    sent_at = {
        **dict.fromkeys(ids[:4], now - timedelta(hours=3)),  # past the retention
        ids[4]: now - timedelta(minutes=10),  # sent, kept for re-drives
    }  # ids[5]: never sent, kept whatever its age
    async with uows() as uow:
        for event_id, at in sent_at.items():
            await uow.session.execute(
                update(OutboxMessage).where(OutboxMessage.event_id == event_id).values(sent_at=at)
            )
        await uow.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.event_id == ids[5])
            .values(created_at=now - timedelta(days=30))
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
