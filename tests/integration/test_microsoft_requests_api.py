"""Microsoft request records over the API: reading, recording a filing, first-response targets."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.overdue import mark_overdue
from shared.db.base import utcnow
from shared.db.engine import create_session_factory
from shared.db.models import MicrosoftRequest, WebhookSubscription
from shared.db.uow import UnitOfWorkFactory
from tests.support.factories import scalar, seed_partner


async def seed_request(uows: UnitOfWorkFactory, partner_id: uuid.UUID) -> uuid.UUID:
    request_id = uuid.uuid4()
    async with uows() as uow:
        uow.session.add(
            MicrosoftRequest(
                id=request_id,
                partner_id=partner_id,
                dedupe_key=f"issue:{uuid.uuid4()}",
                title="[Exchange Online] Mail down",
                description="…",
                severity="critical",
                vehicle="partner_cloud_support",
                partner_center_payload={"Title": "x"},
            )
        )
        uow.session.add(
            WebhookSubscription(
                partner_id=partner_id,
                url="https://hooks.example/x",
                secret="whsec_x",
                event_types=[],
            )
        )
        await uow.commit()
    return request_id


async def test_filing_a_request_by_hand_starts_the_first_response_clock_and_tells_the_partner(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner, other = await seed_partner(database_url), await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    request_id = await seed_request(uows, partner.id)
    url = f"/v1/microsoft-requests/{request_id}"

    listed = (await api.get("/v1/microsoft-requests", headers=partner.headers)).json()
    assert [item["id"] for item in listed["items"]] == [str(request_id)]
    assert (await api.get(url, headers=other.headers)).status_code == 404

    patched = await api.patch(
        url, headers=partner.headers, json={"status": "Open", "microsoft_id": "2411210040001234"}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["status"], body["microsoft_id"], body["overdue"]) == (
        "open",
        "2411210040001234",
        False,
    )
    filed = body["filed_at"]
    due = body["first_response_due_at"]
    assert filed is not None
    assert due is not None
    gap = datetime.fromisoformat(due) - datetime.fromisoformat(filed)
    assert gap == timedelta(hours=2), "critical: Microsoft's first response within 2 hours"
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM webhook_deliveries WHERE event_type = "
            "'microsoft_request.updated'",
        )
        == 1
    )

    bad = await api.patch(url, headers=partner.headers, json={"status": "resolved"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.status"


@pytest.mark.usefixtures("postgresql_only")
async def test_a_note_written_by_hand_keeps_the_note_the_notifier_is_appending(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    """The notes are rewritten whole: a PATCH that read them while the notifier was appending
    one (its row lock held) would write them back without the notifier's."""
    partner = await seed_partner(database_url)
    sessions = create_session_factory(engine)
    request_id = await seed_request(UnitOfWorkFactory(sessions), partner.id)
    async with sessions() as notifier, notifier.begin():
        record = await notifier.get(MicrosoftRequest, request_id, with_for_update=True)
        assert record is not None
        record.notes = [*record.notes, {"at": "t", "author": "notifier", "text": "kept"}]
        await notifier.flush()
        patching = asyncio.create_task(
            api.patch(
                f"/v1/microsoft-requests/{request_id}",
                headers=partner.headers,
                json={"note": "called the customer back"},
            )
        )
        await asyncio.sleep(0.5)  # the PATCH is waiting for the row by now
        assert not patching.done()
    patched = await patching
    assert patched.status_code == 200, patched.text
    assert [note["text"] for note in patched.json()["notes"]] == [
        "kept",
        "called the customer back",
    ]


async def test_a_filed_request_past_its_target_is_marked_overdue_once_until_answered(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    request_id = await seed_request(uows, partner.id)
    url = f"/v1/microsoft-requests/{request_id}"
    await api.patch(url, headers=partner.headers, json={"status": "open"})
    async with uows() as uow:
        await uow.session.execute(
            update(MicrosoftRequest).values(first_response_due_at=utcnow() - timedelta(minutes=1))
        )
        await uow.commit()

    assert await mark_overdue(uows) == 1
    assert await mark_overdue(uows) == 0, "marked once"
    assert (await api.get(url, headers=partner.headers)).json()["overdue"] is True
    assert await scalar(engine, "SELECT count(*) FROM webhook_deliveries") == 2

    answered = await api.patch(
        url, headers=partner.headers, json={"responded": True, "note": "Engineer called back"}
    )
    assert answered.json()["overdue"] is False
    assert answered.json()["notes"][-1]["text"] == "Engineer called back"


async def test_requests_are_listed_a_page_at_a_time_with_a_cursor(
    api: httpx.AsyncClient, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    uows = UnitOfWorkFactory(create_session_factory(engine))
    ids = {str(await seed_request(uows, partner.id)) for _ in range(3)}
    first = (await api.get("/v1/microsoft-requests?limit=2", headers=partner.headers)).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = (
        await api.get(
            f"/v1/microsoft-requests?limit=2&cursor={first['next_cursor']}", headers=partner.headers
        )
    ).json()
    assert second["next_cursor"] is None
    assert {i["id"] for i in first["items"] + second["items"]} == ids
    bad = await api.get("/v1/microsoft-requests?cursor=bm90LWEtY3Vyc29y", headers=partner.headers)
    assert bad.status_code == 422
