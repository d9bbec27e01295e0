"""kill -9 of the classifier mid-batch: every issue still ends routed exactly once."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.vocabulary import Vehicle
from tests.support.factories import (
    eventually,
    issue_body,
    routed_issues,
    rows,
    scalar,
    seed_partner,
)
from tests.support.receiver import WebhookReceiver
from tests.support.stack import SMALL_BATCHES_ENV, Stack

ISSUES = 200
CATEGORIES = ("bug", "billing", "service_unavailable", "commercial", "configuration")


async def test_killing_the_classifier_mid_batch_loses_and_duplicates_nothing(
    stack: Stack, database_url: str, reader: AsyncEngine
) -> None:
    engine = reader
    stack.extra_env.update(SMALL_BATCHES_ENV)
    partner = await seed_partner(database_url, vehicles=(Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,))
    await stack.start("intake", "notifier")
    async with (
        WebhookReceiver().running() as receiver,
        httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers, timeout=30) as client,
    ):
        hook = await client.post("/v1/webhooks", json={"url": receiver.url})
        assert hook.status_code == 201
        bodies = [issue_body(category=CATEGORIES[i % len(CATEGORIES)]) for i in range(ISSUES)]
        answers = await asyncio.gather(*(client.post("/v1/issues", json=b) for b in bodies))
        assert [a.status_code for a in answers] == [202] * ISSUES

        await stack.start("classifier")
        await eventually(
            lambda: _classified_at_least(engine, 20), timeout=60, interval=0.01, message=stack.logs
        )
        stack.kill("classifier")
        classified_when_killed = await _classified(engine)
        assert classified_when_killed < ISSUES, "the classifier finished before it could be killed"

        restarted = time.monotonic()
        await stack.start("classifier")
        await eventually(lambda: _routed_all(engine), timeout=90, message=stack.logs)
        print(
            f"killed after {classified_when_killed}/{ISSUES} classified; all routed "
            f"{time.monotonic() - restarted:.1f}s after the restart"
        )
        await eventually(
            lambda: _received_at_least(receiver, ISSUES), timeout=60, message=stack.logs
        )

    assert await scalar(engine, "SELECT count(*) FROM classifications") == ISSUES
    per_issue = await rows(
        engine,
        """
        SELECT issue_id, status, count(*) FROM issue_events GROUP BY issue_id, status
        HAVING count(*) <> 1""",
    )
    assert per_issue == [], "an issue was classified or routed more than once"
    escalated = await scalar(
        engine, "SELECT count(*) FROM classifications WHERE outcome = 'escalated_to_microsoft'"
    )
    assert escalated == 3 * ISSUES // 5
    assert await scalar(engine, "SELECT count(*) FROM microsoft_requests") == escalated
    assert (
        await scalar(
            engine,
            "SELECT count(DISTINCT microsoft_request_id) FROM issues "
            "WHERE microsoft_request_id IS NOT NULL",
        )
        == escalated
    )
    assert await scalar(engine, "SELECT count(*) FROM webhook_deliveries") == ISSUES
    assert len({r.headers["webhook-id"] for r in receiver.received}) == ISSUES


async def _classified(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM issues WHERE status <> 'received'"))


async def _classified_at_least(engine: AsyncEngine, n: int) -> bool:
    return await _classified(engine) >= n


async def _routed_all(engine: AsyncEngine) -> bool:
    return await routed_issues(engine) == ISSUES


async def _received_at_least(receiver: WebhookReceiver, n: int) -> bool:
    return len({r.headers["webhook-id"] for r in receiver.received}) >= n
