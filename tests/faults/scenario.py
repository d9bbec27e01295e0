"""One fault scenario: load, the fault, then the reconciliation every scenario must pass."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka.embedded import EmbeddedBroker
from shared.vocabulary import Vehicle
from tests.support.factories import eventually, scalar, seed_partner
from tests.support.faults import (
    SUMMARY_KEY,
    PsaLoad,
    Reconciliation,
    dead_letters,
    duplicates,
    group_report,
    half_written,
    loading,
    not_routed,
    routed_count,
    wait_until_routed,
    webhooks_not_settled,
)
from tests.support.receiver import WebhookReceiver
from tests.support.stack import Stack

FULL = os.environ.get("FAULTS_FULL") == "1"
RATE = 25.0 if FULL else 20.0
SETTLE_S = 180.0 if FULL else 120.0


@dataclass
class Context:
    stack: Stack
    broker: EmbeddedBroker
    receiver: WebhookReceiver
    load: PsaLoad
    topic_prefix: str


# A fault runs while the load does and returns ``time.monotonic()`` of when it was cleared.
Fault = Callable[[Context], Awaitable[float]]


async def exercise(
    name: str,
    fault: Fault,
    *,
    request: pytest.FixtureRequest,
    stack: Stack,
    broker: EmbeddedBroker,
    database_url: str,
    engine: AsyncEngine,
    topic_prefix: str,
    load_s: float,
    expected_dead_letters: int = 0,
) -> Reconciliation:
    """Run ``fault`` under load and check every guarantee; the figures go to the summary."""
    partner = await seed_partner(database_url, vehicles=(Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,))
    await stack.start()
    async with (
        WebhookReceiver().running() as receiver,
        httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers, timeout=30) as client,
    ):
        hook = await client.post("/v1/webhooks", json={"url": receiver.url})
        assert hook.status_code == 201
        load = PsaLoad(client, rate=RATE, total=int(RATE * load_s))
        async with loading(load) as task:
            await asyncio.sleep(1.5)
            cleared = await fault(Context(stack, broker, receiver, load, topic_prefix))
            # The fault's backlog: the issues accepted until it was cleared. The load goes on
            # after that, so the time to the last issue routed would measure the load's length.
            backlog = asyncio.create_task(
                wait_until_routed(engine, set(load.accepted.values()), timeout_s=SETTLE_S)
            )
            await asyncio.wait_for(task, timeout=SETTLE_S)
        ids = set(load.accepted.values())
        await wait_until_routed(engine, ids, timeout_s=SETTLE_S)
        caught_up = await backlog
        await eventually(lambda: _settled(engine), timeout=SETTLE_S, message=lambda: stack.logs())
        result = await _reconcile(name, engine, broker, topic_prefix, ids, cleared, caught_up)
        delivered = {r.headers["webhook-id"] for r in receiver.received}
    request.node.user_properties.append((SUMMARY_KEY, json.dumps(result.row())))
    print(json.dumps(result.row()))

    assert len(ids) == load.total, "every issue the PSA sent was accepted in the end"
    if result.lost:
        groups = await group_report(broker.bootstrap_servers, topic_prefix)
        stuck = await not_routed(engine, ids)
        raise AssertionError(
            f"{result.lost} issues never routed: {stuck}\n{groups}\nlogs:\n{stack.logs()}"
        )
    assert result.duplicates == 0, result.notes
    assert await scalar(engine, "SELECT count(*) FROM issues") == load.total, "phantom issues"
    assert await half_written(engine) == 0
    assert result.dead_lettered == expected_dead_letters, (
        f"{result.dead_lettered} records on the DLQs; logs:\n{stack.logs()}"
    )
    deliveries = await scalar(engine, "SELECT count(*) FROM webhook_deliveries")
    assert deliveries == load.total, "one webhook delivery per routed issue"
    parked = await scalar(
        engine, "SELECT count(*) FROM webhook_deliveries WHERE status = 'exhausted'"
    )
    assert len(delivered) == deliveries - parked, "the receiver got every delivery not parked"
    return result


async def _settled(engine: AsyncEngine) -> bool:
    return await webhooks_not_settled(engine) == 0


async def _reconcile(
    name: str,
    engine: AsyncEngine,
    broker: EmbeddedBroker,
    topic_prefix: str,
    ids: set[str],
    cleared: float,
    caught_up: float | None,
) -> Reconciliation:
    routed = await routed_count(engine, ids)
    twice = await duplicates(engine)
    parked = await dead_letters(broker.bootstrap_servers, topic_prefix)
    return Reconciliation(
        scenario=name,
        accepted=len(ids),
        routed=routed,
        duplicates=sum(twice.values()),
        lost=len(ids) - routed,
        recovery_s=None if caught_up is None else round(max(caught_up - cleared, 0.0), 1),
        dead_lettered=sum(len(records) for records in parked.values()),
        notes=[f"{kind}: {n}" for kind, n in twice.items() if n],
    )


class Runner(Protocol):
    """``exercise`` with the scenario's own fixtures already given (the ``run_fault`` fixture)."""

    async def __call__(
        self, name: str, fault: Fault, *, load_s: float, expected_dead_letters: int = 0
    ) -> Reconciliation: ...
