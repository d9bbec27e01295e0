"""Two classifiers and two notifiers on a burst of outage reports: one cluster, one request."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka.producer import key_partition
from shared.vocabulary import Vehicle
from tests.support.factories import (
    eventually,
    issue_body,
    routed_issues,
    rows,
    scalar,
    seed_partner,
)
from tests.support.stack import Stack

WEST = 12
EAST = 2


async def test_a_burst_from_many_tenants_makes_one_cluster_and_one_microsoft_request(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url, vehicles=(Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,))
    stack.add_instance("classifier-2", "classifier")
    stack.add_instance("notifier-2", "notifier")
    await stack.start("intake", "classifier", "classifier-2", "notifier", "notifier-2")

    async def both_classifiers_assigned() -> bool:
        return all(_assigned(stack.log_tail(i, 10_000)) for i in ("classifier", "classifier-2"))

    # The burst comes once the partitions are split, so both classifiers race on it; started
    # after it, the first to join could work it all off before the second had a partition.
    await eventually(both_classifiers_assigned, timeout=60, message=stack.logs)
    bodies = [
        issue_body(
            service="Exchange Online",
            region="westeurope",
            category="service_unavailable",
            tenant_id=str(uuid.uuid4()),
        )
        for _ in range(WEST)
    ]
    bodies += [
        issue_body(
            service="Exchange Online",
            region="eastus",
            category="service_unavailable",
            tenant_id=str(uuid.uuid4()),
        )
        for _ in range(EAST)
    ]
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        answers = await asyncio.gather(*(client.post("/v1/issues", json=b) for b in bodies))
    assert {a.status_code for a in answers} == {202}

    async def all_routed() -> bool:
        return await routed_issues(engine) == (WEST + EAST)

    await eventually(all_routed, timeout=90, message=stack.logs)
    logs = {
        instance: stack.log_tail(instance, 10_000) for instance in ("classifier", "classifier-2")
    }
    owned = {instance: set(_assigned(log)) for instance, log in logs.items()}
    partitions = sorted(set().union(*owned.values()))
    issue_ids = [str(answer.json()["id"]) for answer in answers]
    for instance, log in logs.items():
        assert owned[instance], f"{instance} got no partition"
        # Each classifies the issues keyed to its partitions, so both race on the burst unless
        # the intake's (random) issue ids all fell in the other's partitions: with 14 ids and a
        # third of the partitions, about one run in 300.
        keyed_here = [
            i for i in issue_ids if key_partition(i.encode(), partitions) in owned[instance]
        ]
        if keyed_here:
            assert '"event":"event processed"' in log, f"{instance} classified none of the burst"

    assert await scalar(engine, "SELECT count(*) FROM outage_clusters") == 1
    cluster_id = await scalar(engine, "SELECT id FROM outage_clusters")
    assert (
        await scalar(
            engine, "SELECT count(*) FROM cluster_signals WHERE cluster_id = :c", c=cluster_id
        )
        == WEST
    )
    active = await rows(
        engine,
        "SELECT id, dedupe_key FROM microsoft_requests "
        "WHERE superseded_by_id IS NULL ORDER BY dedupe_key",
    )
    cluster_requests = [r for r in active if r.dedupe_key == f"cluster:{cluster_id}"]
    assert len(cluster_requests) == 1, active
    assert len(active) == 1 + EAST, "the other region escalates each issue on its own"
    linked = await rows(
        engine, "SELECT DISTINCT i.microsoft_request_id FROM issues i WHERE i.region = 'westeurope'"
    )
    assert [str(r[0]).replace("-", "") for r in linked] == [
        str(cluster_requests[0].id).replace("-", "")
    ]
    assert (
        await scalar(
            engine, "SELECT count(*) FROM classifications WHERE cluster_id = :c", c=cluster_id
        )
        == WEST
    )
    listed = await rows(
        engine,
        "SELECT m.issue_id FROM microsoft_request_issues m "
        "JOIN microsoft_requests r ON r.id = m.request_id WHERE r.dedupe_key = :k",
        k=f"cluster:{cluster_id}",
    )
    assert len(listed) == WEST, "the cluster's request is for every issue of the cluster"
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM cluster_signals WHERE cluster_id = :c AND NOT absorbed",
            c=cluster_id,
        )
        == 0
    ), "every member looked at"
    print(f"cluster {cluster_id}: {WEST} issues, 1 active Microsoft request")


def _assigned(log: str) -> list[int]:
    """Partitions of issues.received this classifier instance was given, from its JSON log."""
    partitions: list[int] = []
    for line in log.splitlines():
        if '"partitions assigned"' not in line:
            continue
        record = json.loads(line)
        if record.get("consumer") == "classifier":
            partitions = record["partitions"]
    return partitions
