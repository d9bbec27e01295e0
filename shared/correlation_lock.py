"""The per-key row lock that serialises everyone who correlates on (partner, service, region)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import CorrelationKey
from shared.db.upsert import insert_if_absent


def correlation_key(service: str, region: str) -> tuple[str, str]:
    return service.strip().casefold(), region.strip().casefold()


async def lock_correlation_key(
    session: AsyncSession, partner_id: uuid.UUID, service_key: str, region_key: str
) -> None:
    """Hold the key's row until the transaction ends (SQLite: its write lock already does)."""
    values = {"partner_id": partner_id, "service_key": service_key, "region_key": region_key}
    await insert_if_absent(session, CorrelationKey, values, conflict=list(values))
    await session.execute(
        select(CorrelationKey.partner_id)
        .where(
            CorrelationKey.partner_id == partner_id,
            CorrelationKey.service_key == service_key,
            CorrelationKey.region_key == region_key,
        )
        .with_for_update()
    )
