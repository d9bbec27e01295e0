"""Faults injected under load; after each, every accepted issue is routed exactly once.

``make test`` runs the short form; ``make faults`` the full one (FAULTS_FULL=1: a 30 s broker
outage and a longer load). The PostgreSQL outage stops the machine's shared server, so it is
marked ``serial`` and run on its own.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from aiokafka import AIOKafkaProducer

from tests.faults import postgres
from tests.faults.scenario import FULL, Context, Fault, Runner
from tests.support.stack import SERVICES

BROKER_OUTAGE_S = 30.0 if FULL else 6.0
POSTGRES_OUTAGE_S = 10.0
LOAD_S = 12.0 if FULL else 5.0


def _kill(*names: str) -> Fault:
    async def fault(ctx: Context) -> float:
        for name in names:
            ctx.stack.kill(name)
        await asyncio.sleep(1.0)
        await ctx.stack.start(*names)
        return time.monotonic()

    return fault


@pytest.mark.parametrize("victims", [("intake",), ("classifier",), ("notifier",), SERVICES])
async def test_a_service_killed_mid_load_loses_and_duplicates_nothing(
    victims: tuple[str, ...],
    run_fault: Runner,
) -> None:
    name = "kill -9 all three" if len(victims) == 3 else f"kill -9 {victims[0]}"
    result = await run_fault(
        name,
        _kill(*victims),
        load_s=LOAD_S,
    )
    assert result.lost == 0


async def test_a_broker_outage_that_loses_every_topic_is_made_good(
    run_fault: Runner,
) -> None:
    async def fault(ctx: Context) -> float:
        ctx.broker.stop()
        await asyncio.sleep(BROKER_OUTAGE_S)
        await ctx.broker.start()
        return time.monotonic()

    await run_fault(
        f"broker down {BROKER_OUTAGE_S:.0f} s (memory lost)",
        fault,
        load_s=BROKER_OUTAGE_S + 4,
    )


async def test_a_slow_then_failing_webhook_receiver_gets_everything_once_it_is_back(
    run_fault: Runner,
) -> None:
    async def fault(ctx: Context) -> float:
        ctx.receiver.delay_s = 4.0  # past the notifier's 3 s timeout
        await asyncio.sleep(3.0)
        ctx.receiver.delay_s, ctx.receiver.status_code = 0.0, 503
        await asyncio.sleep(3.0)
        ctx.receiver.status_code = 204
        return time.monotonic()

    await run_fault(
        "webhook receiver slow, failing, back",
        fault,
        load_s=LOAD_S + 3,
    )


POISON = (
    b"{not json",
    b'{"specversion":"1.0","id":"p1","source":"/t","type":"csp.issue.received",'
    b'"data":{"issue_id":"nope"}}',
    b'{"specversion":"1.0","id":"p2","source":"/t","type":"csp.unknown.thing","data":{}}',
    b"",
)
OVERSIZED = b'{"specversion":"1.0","id":"big","data":"' + b"x" * 600_000 + b'"}'
CONSUMED = ("issues.received", "issues.classified", "health.incidents")


async def test_poison_and_oversized_records_on_every_consumed_topic_are_parked_and_passed(
    run_fault: Runner,
) -> None:
    async def fault(ctx: Context) -> float:
        producer = AIOKafkaProducer(
            bootstrap_servers=ctx.broker.bootstrap_servers, max_request_size=2_000_000
        )
        await producer.start()
        try:
            for topic in CONSUMED:
                for value in (*POISON, OVERSIZED):
                    await producer.send_and_wait(f"{ctx.topic_prefix}{topic}", value, key=b"p")
        finally:
            await producer.stop()
        return time.monotonic()

    await run_fault(
        "poison + oversized on every consumed topic",
        fault,
        load_s=LOAD_S,
        expected_dead_letters=len(CONSUMED) * (len(POISON) + 1),
    )


async def test_consumers_rebalanced_mid_load_by_a_joining_and_a_leaving_instance(
    run_fault: Runner,
) -> None:
    async def fault(ctx: Context) -> float:
        for name in ("classifier", "notifier"):
            ctx.stack.add_instance(f"{name}-2", name)
        await ctx.stack.start("classifier-2", "notifier-2")
        await asyncio.sleep(1.5)
        for name in ("classifier", "notifier"):
            ctx.stack.kill(name, signal.SIGTERM)
        return time.monotonic()

    await run_fault(
        "second consumers join, first ones leave",
        fault,
        load_s=LOAD_S + 2,
    )


@pytest.mark.serial
async def test_a_postgres_outage_answers_503_writes_nothing_by_halves_and_recovers(
    run_fault: Runner,
    database_url: str,
) -> None:
    server = postgres.local_cluster(database_url)
    loads = []

    async def fault(ctx: Context) -> float:
        loads.append(ctx.load)
        await asyncio.to_thread(server.stop)
        try:
            await asyncio.sleep(POSTGRES_OUTAGE_S)
        finally:
            await asyncio.to_thread(server.start)
        return time.monotonic()

    await run_fault(
        f"PostgreSQL down {POSTGRES_OUTAGE_S:.0f} s",
        fault,
        load_s=POSTGRES_OUTAGE_S + 4,
    )
    assert loads[0].unavailable_with_retry_after > 0, "the intake said 503 + Retry-After"
    assert set(loads[0].first_answers) <= {202, 503}, loads[0].first_answers
