"""kill -9 of the notifier mid-burst: no lost and no duplicated Microsoft request records."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.vocabulary import Vehicle
from tests.support.factories import eventually, issue_body, rows, scalar, seed_partner
from tests.support.receiver import WebhookReceiver
from tests.support.stack import SMALL_BATCHES_ENV, Stack

ISSUES = 150
CATEGORIES = ("bug", "service_unavailable", "commercial")


async def test_killing_the_notifier_mid_burst_loses_and_duplicates_no_request(
    stack: Stack, database_url: str, reader: AsyncEngine
) -> None:
    engine = reader
    stack.extra_env.update(SMALL_BATCHES_ENV)
    partner = await seed_partner(database_url, vehicles=(Vehicle.PARTNER_CLOUD_SUPPORT,))
    await stack.start("intake", "classifier")
    async with (
        WebhookReceiver().running() as receiver,
        httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers, timeout=30) as client,
    ):
        assert (await client.post("/v1/webhooks", json={"url": receiver.url})).status_code == 201
        bodies = [issue_body(category=CATEGORIES[i % 3]) for i in range(ISSUES)]
        answers = await asyncio.gather(*(client.post("/v1/issues", json=b) for b in bodies))
        assert {a.status_code for a in answers} == {202}

        async def all_classified() -> bool:
            return await _count(engine, "classified") == ISSUES

        await eventually(all_classified, timeout=60, message=stack.logs)
        await stack.start("notifier")

        async def some_routed() -> bool:
            return await _count(engine, "routed") >= 15

        await eventually(some_routed, timeout=60, interval=0.01, message=stack.logs)
        stack.kill("notifier")
        assert await _count(engine, "routed") < ISSUES, "finished before it could be killed"
        await stack.start("notifier")

        async def all_routed() -> bool:
            return await _count(engine, "routed") == ISSUES

        await eventually(all_routed, timeout=90, message=stack.logs)

        async def all_delivered() -> bool:
            return len(receiver.ids()) == ISSUES

        await eventually(all_delivered, timeout=60, message=stack.logs)

    assert await scalar(engine, "SELECT count(*) FROM microsoft_requests") == ISSUES
    per_issue = await rows(
        engine,
        "SELECT microsoft_request_id, count(*) FROM issues "
        "GROUP BY microsoft_request_id HAVING count(*) > 1",
    )
    assert per_issue == []
    assert await scalar(engine, "SELECT count(*) FROM webhook_deliveries") == ISSUES
    routed_twice = await rows(
        engine,
        "SELECT issue_id FROM issue_events WHERE status = 'routed' "
        "GROUP BY issue_id HAVING count(*) > 1",
    )
    assert routed_twice == []


async def _count(engine: AsyncEngine, status: str) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM issues WHERE status = :s", s=status))
