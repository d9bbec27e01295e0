"""Poison records go to the DLQ with a reason, and the consumer keeps going."""

from __future__ import annotations

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.broker import read_topic
from tests.support.factories import eventually, issue_body, routed_issues, seed_partner
from tests.support.stack import Stack


async def test_a_malformed_record_is_dead_lettered_and_the_next_good_one_is_processed(
    stack: Stack,
    database_url: str,
    engine: AsyncEngine,
    bootstrap_servers: str,
    topic_prefix: str,
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for poison in (
            b"{not json",
            b'{"specversion":"1.0","id":"x","source":"/t",'
            b'"type":"csp.issue.received","data":{"issue_id":"nope"}}',
        ):
            await producer.send_and_wait(f"{topic_prefix}issues.received", poison, key=b"k")
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        accepted = await client.post("/v1/issues", json=issue_body())
        assert accepted.status_code == 202

    async def routed() -> bool:
        return await routed_issues(engine) == 1

    await eventually(routed, timeout=30, message=stack.logs)
    dead = await read_topic(bootstrap_servers, f"{topic_prefix}issues.received.dlq", expected=2)
    assert sorted(r.value for r in dead)[0].startswith(b'{"specversion"') or len(dead) == 2
    reasons = [dict(r.headers)["dlq.reason"].decode() for r in dead]
    assert any("not a CloudEvents JSON record" in reason for reason in reasons)
    assert any("invalid csp.issue.received data" in reason for reason in reasons)
    assert all(dict(r.headers)["dlq.consumer"] == b"classifier" for r in dead)
