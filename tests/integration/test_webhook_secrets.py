"""Rotating an endpoint's signing secret: the old secret keeps signing for the overlap, and two
rotations at once each keep what the other handed out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import WebhookSubscription
from tests.support.factories import WEBHOOK_SECRET, seed_partner, seed_webhook


async def _stored(engine: AsyncEngine, subscription_id: uuid.UUID) -> WebhookSubscription:
    async with create_session_factory(engine)() as session:
        row = await session.get(WebhookSubscription, subscription_id)
        assert row is not None
        return row


async def test_a_rotation_keeps_the_old_secret_signing_for_a_day(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    hook = await seed_webhook(engine, partner)

    answer = await api.post(f"/v1/webhooks/{hook}/rotate-secret", headers=partner.headers)

    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != WEBHOOK_SECRET
    stored = await _stored(engine, hook)
    assert (stored.secret, stored.previous_secret) == (rotated["secret"], WEBHOOK_SECRET)
    assert stored.previous_secret_expires_at is not None
    overlap = stored.previous_secret_expires_at - utcnow()
    assert timedelta(hours=23) < overlap <= timedelta(hours=24)


@pytest.mark.usefixtures("postgresql_only")
async def test_a_rotation_waits_for_one_under_way_and_keeps_its_secret_as_the_previous(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    """Two admins rotating at once: the rotation that commits second must keep the first
    one's new secret signing. Read without a lock, it would keep the secret before both, and
    the receiver given the first one's secret would refuse every delivery from then on."""
    partner = await seed_partner(database_url)
    hook = await seed_webhook(engine, partner)
    sessions = create_session_factory(engine)
    async with sessions() as other, other.begin():
        row = await other.get(WebhookSubscription, hook, with_for_update=True)
        assert row is not None
        other_secret = "whsec_" + "B" * 32
        row.previous_secret, row.secret = row.secret, other_secret
        await other.flush()
        rotating = asyncio.create_task(
            api.post(f"/v1/webhooks/{hook}/rotate-secret", headers=partner.headers)
        )
        await asyncio.sleep(0.5)  # the rotation is waiting for the row by now
        assert not rotating.done()
    answer = await rotating

    assert answer.status_code == 200, answer.text
    stored = await _stored(engine, hook)
    assert (stored.secret, stored.previous_secret) == (answer.json()["secret"], other_secret)
