"""The broker goes away: intake keeps accepting, and everything drains when it returns.

The embedded broker keeps nothing on disk, so its restart also loses topics and committed
offsets; the outbox and the reconciler have to make up for that.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka.embedded import EmbeddedBroker
from tests.support.factories import eventually, issue_body, routed_issues, scalar, seed_partner
from tests.support.faults import group_report
from tests.support.forkserver import ForkServer
from tests.support.stack import Stack

DURING_OUTAGE = 50


async def test_issues_accepted_while_the_broker_is_down_are_all_routed_after_it_returns(
    database_url: str, engine: AsyncEngine, topic_prefix: str, tmp_path: Path, forks: ForkServer
) -> None:
    partner = await seed_partner(database_url)
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    await broker.start()
    stack = Stack(database_url, broker.bootstrap_servers, topic_prefix, tmp_path, forks)
    try:
        await stack.start()
        async with httpx.AsyncClient(
            base_url=stack.intake_url, headers=partner.headers, timeout=30
        ) as client:
            first = await client.post("/v1/issues", json=issue_body())
            assert first.status_code == 202
            await eventually(lambda: _routed(engine, 1), timeout=30, message=stack.logs)

            broker.stop()
            answers = await asyncio.gather(
                *(client.post("/v1/issues", json=issue_body()) for _ in range(DURING_OUTAGE))
            )
            assert [a.status_code for a in answers] == [202] * DURING_OUTAGE
            unsent = await scalar(engine, "SELECT count(*) FROM outbox_pending")
            assert unsent >= DURING_OUTAGE

            await asyncio.sleep(2)
            await broker.start()
            back = time.monotonic()
            try:
                await eventually(lambda: _routed(engine, DURING_OUTAGE + 1), timeout=120)
            except AssertionError:
                # What the broker holds and what it logged: the logs of the services alone
                # did not tell why an issue stayed classified (once in four SQLite-stage runs).
                groups = await group_report(broker.bootstrap_servers, topic_prefix)
                told = (tmp_path / "broker.log").read_text(errors="replace")[-6000:]
                raise AssertionError(
                    f"not all routed\n{groups}\n--- broker ---\n{told}\n{stack.logs()}"
                ) from None
            print(
                f"{DURING_OUTAGE} issues routed {time.monotonic() - back:.1f}s after the broker "
                "returned"
            )
    finally:
        await stack.stop()
        broker.stop()
    assert await scalar(engine, "SELECT count(*) FROM microsoft_requests") == DURING_OUTAGE + 1


async def _routed(engine: AsyncEngine, n: int) -> bool:
    return await routed_issues(engine) == n
