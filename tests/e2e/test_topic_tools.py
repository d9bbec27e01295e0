"""Topics from outside: ``topics tail``, ``dlq list``/``replay``, and kcat as a foreign client."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any, cast

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from cloudevents.core.formats.json import JSONFormat
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.factories import (
    SeededPartner,
    eventually,
    issue_body,
    routed_issues,
    seed_partner,
)
from tests.support.launch import ESCALATION
from tests.support.stack import Stack

pytestmark = pytest.mark.single_db


async def post_and_route(stack: Stack, engine: AsyncEngine, partner: SeededPartner) -> list[str]:
    """One issue escalated to Microsoft and one the partner resolves, both routed."""
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        ids = []
        for body in (
            issue_body(category="bug"),
            issue_body(category="billing", title="Factura duplicada", service="Billing"),
        ):
            answer = await client.post("/v1/issues", json=body)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])

    async def routed() -> bool:
        return await routed_issues(engine) == 2

    await eventually(routed, timeout=30, message=stack.logs)
    return ids


async def test_tail_prints_the_matching_routed_events_only(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    escalated, resolved = await post_and_route(stack, engine, partner)

    tailed = await stack.cli(
        "topics", "tail", "issues.routed", "--from-beginning", "--json",
        "--filter", "outcome=escalated_to_microsoft", "--idle-timeout", "3",
    )  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [line["event"]["data"]["issue_id"] for line in lines] == [escalated]
    assert lines[0]["event"]["type"] == "csp.issue.routed"

    pretty = await stack.cli(
        "topics", "tail", "issues.routed", "--from-beginning", "--limit", "1",
        "--filter", f"issue_id={resolved}", "--filter", "type=csp.issue.routed",
    )  # fmt: skip
    assert pretty.returncode == 0, pretty.stderr
    assert f"key={resolved}" in pretty.stdout
    assert '"outcome": "partner_resolves"' in pretty.stdout
    assert escalated not in pretty.stdout


async def test_tail_without_from_beginning_follows_only_what_arrives_after_it_starts(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    before, _ = await post_and_route(stack, engine, partner)
    follow = await asyncio.create_subprocess_exec(
        ESCALATION, "topics", "tail", "issues.received", "--json", "--limit", "1",
        env=stack.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert follow.stderr is not None
    ready = await asyncio.wait_for(follow.stderr.readline(), timeout=30)
    assert b"from the end" in ready, ready
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        after = (await client.post("/v1/issues", json=issue_body())).json()["id"]
    stdout, stderr = await asyncio.wait_for(follow.communicate(), timeout=60)
    assert follow.returncode == 0, stderr
    [line] = [json.loads(line) for line in stdout.decode().splitlines()]
    assert line["event"]["data"]["issue_id"] == after != before


async def test_tail_refuses_an_unknown_topic_and_a_malformed_filter(stack: Stack) -> None:
    unknown = await stack.cli("topics", "tail", "issues.rooted", "--idle-timeout", "1")
    assert unknown.returncode == 2
    assert "unknown topic 'issues.rooted'" in unknown.stderr
    bad = await stack.cli("topics", "tail", "issues.routed", "--filter", "outcome")
    assert bad.returncode == 2
    assert "NAME=VALUE" in bad.stderr


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat (Debian package) not installed")
async def test_kcat_reads_issues_routed_as_cloudevents_json(
    stack: Stack, database_url: str, engine: AsyncEngine, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    ids = await post_and_route(stack, engine, partner)

    topic = f"{topic_prefix}issues.routed"
    kcat = await asyncio.to_thread(
        subprocess.run,
        ["kcat", "-C", "-b", bootstrap_servers, "-t", topic, "-e", "-q", "-J",
         *await kcat_dialect(bootstrap_servers)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert kcat.returncode == 0, kcat.stderr
    records = [json.loads(line) for line in kcat.stdout.splitlines() if line.strip()]
    events = [JSONFormat().read(None, record["payload"].encode()) for record in records]
    data = [cast(dict[str, Any], event.get_data()) for event in events]  # a JSON object each
    assert sorted(d["issue_id"] for d in data) == sorted(ids)
    for record, event, fields in zip(records, events, data, strict=True):
        assert event.get_specversion() == "1.0"
        assert event.get_type() == "csp.issue.routed"
        assert event.get_subject() == record["key"] == fields["issue_id"]
        assert event.get_source() == "/csp-escalation/notifier"


# Debian 12's kcat (librdkafka 2.0.2) cannot parse the ApiVersions answer of the embedded broker
# (Tansu sends tagged fields it misreads); it then works with the protocol versions pinned and
# an absolute start offset. Against Apache Kafka the plain form is used.
KCAT_PINNED = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0", "-o", "0"]


async def kcat_dialect(bootstrap_servers: str) -> list[str]:
    probe = await asyncio.to_thread(
        subprocess.run,
        ["kcat", "-L", "-b", bootstrap_servers, "-m", "5"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if probe.returncode == 0:
        return ["-o", "beginning"]
    assert "ApiVersion" in probe.stderr or "transport failure" in probe.stderr, probe.stderr
    return KCAT_PINNED


async def park_the_first_received_event(bootstrap_servers: str, topic_prefix: str) -> None:
    """What a classifier that gave up on the record leaves: a DLQ copy, and its offset past it."""
    source = f"{topic_prefix}issues.received"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=f"{topic_prefix}csp-escalation.classifier",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(source) or set()
        consumer.assign([TopicPartition(source, p) for p in partitions])
        record = None
        while record is None:
            batch = await consumer.getmany(timeout_ms=1000)
            record = next((r for rs in batch.values() for r in rs), None)
        tp = TopicPartition(record.topic, record.partition)
        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
    finally:
        await consumer.stop()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{source}.dlq",
            value=record.value,
            key=record.key,
            headers=[
                *list(record.headers or ()),
                ("dlq.reason", b"OperationalError: the database was being restored"),
                ("dlq.consumer", b"classifier"),
                ("dlq.source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
                ("dlq.failed_at", b"2026-11-21T08:00:00+00:00"),
            ],
        )
    finally:
        await producer.stop()


async def test_a_parked_issue_is_listed_replayed_once_and_then_routed(
    stack: Stack, database_url: str, engine: AsyncEngine, bootstrap_servers: str, topic_prefix: str
) -> None:
    stack.extra_env["RECONCILER_STUCK_AFTER_S"] = "3600"
    partner = await seed_partner(database_url)
    await stack.start("intake", "notifier")
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        issue_id = (await client.post("/v1/issues", json=issue_body())).json()["id"]
    await park_the_first_received_event(bootstrap_servers, topic_prefix)
    await stack.start("classifier")

    listed = await stack.cli("dlq", "list", "issues.received")
    assert listed.returncode == 0, listed.stderr
    assert "offset 0  parked" in listed.stdout
    assert "reason: OperationalError: the database was being restored" in listed.stdout
    assert "1 record(s), 1 not replayed" in listed.stdout
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        assert (await client.get(f"/v1/issues/{issue_id}")).json()["status"] == "received"

    dry = await stack.cli("dlq", "replay", "issues.received", "--dry-run")
    assert "would replay 1 record(s)" in dry.stdout
    replayed = await stack.cli("dlq", "replay", "issues.received")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed 1 record(s) to {topic_prefix}issues.received" in replayed.stdout

    async def routed() -> bool:
        return await routed_issues(engine) == 1

    await eventually(routed, timeout=30, message=stack.logs)
    again = await stack.cli("dlq", "replay", "issues.received")
    assert "replayed 0 record(s)" in again.stdout
    after = await stack.cli("dlq", "list", "issues.received", "--json")
    [letter] = [json.loads(line) for line in after.stdout.splitlines()]
    assert letter["replayed"] is True
    assert letter["event"]["data"]["issue_id"] == issue_id


async def test_a_replayed_poison_record_comes_back_to_the_dlq_and_the_consumer_goes_on(
    stack: Stack, database_url: str, engine: AsyncEngine, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(f"{topic_prefix}issues.classified", b"{not json", key=b"k")
    finally:
        await producer.stop()

    async def parked(count: int) -> bool:
        listed = await stack.cli("dlq", "list", "issues.classified", "--json")
        return len(listed.stdout.splitlines()) == count

    await eventually(lambda: parked(1), timeout=30, message=stack.logs)
    replayed = await stack.cli("dlq", "replay", "issues.classified", "--offset", "0")
    assert "replayed 1 record(s)" in replayed.stdout
    await eventually(lambda: parked(2), timeout=30, message=stack.logs)
    listed = await stack.cli("dlq", "list", "issues.classified", "--json")
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert all("not a CloudEvents JSON record" in d["headers"]["dlq.reason"] for d in letters)
    assert [d["replayed"] for d in letters] == [False, False]
    await post_and_route(stack, engine, partner)
