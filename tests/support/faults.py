"""The fault suite's harness: steady load from a PSA that retries like a real one, and the
reconciliation that says whether anything was lost, duplicated or wrongly dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.structs import OffsetAndMetadata
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kafka.offsets import log_ends
from shared.kafka.topics import TopicNames, group_id
from shared.reconciler import STUCK_STATES
from tests.support.broker import kafka, read_topic
from tests.support.factories import issue_body, rows, scalar

CATEGORIES = ("bug", "billing", "service_unavailable", "commercial", "configuration")
CONSUMED_TOPICS = ("issues.received", "issues.classified", "health.incidents")
# Each scenario hands its row to the run's summary under this user-property key.
SUMMARY_KEY = "fault_summary"


@dataclass
class PsaLoad:
    """Posts issues at a steady rate, each with its own Idempotency-Key. A 503 is retried
    after its Retry-After (capped, to keep tests short), a dropped connection after a pause:
    what a PSA integration does, so every issue is eventually accepted exactly once."""

    client: httpx.AsyncClient
    rate: float
    total: int
    max_retry_wait_s: float = 1.0
    accepted: dict[str, str] = field(default_factory=dict)  # external_ref -> issue id
    first_answers: Counter[int] = field(default_factory=Counter)
    unavailable_with_retry_after: int = 0
    connection_errors: int = 0

    async def run(self) -> None:
        tasks = []
        started = time.monotonic()
        for n in range(self.total):
            delay = started + n / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = issue_body(category=CATEGORIES[n % len(CATEGORIES)])
            tasks.append(asyncio.create_task(self._post(body)))
        await asyncio.gather(*tasks)

    async def _post(self, body: dict[str, Any]) -> None:
        key = body["external_ref"]
        first = True
        while True:
            try:
                answer = await self.client.post(
                    "/v1/issues", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                self.connection_errors += 1
                await asyncio.sleep(0.5)
                continue
            if first:
                self.first_answers[answer.status_code] += 1
                first = False
            if answer.status_code in (200, 202):
                self.accepted[key] = answer.json()["id"]
                return
            if answer.status_code == 503 and "Retry-After" in answer.headers:
                self.unavailable_with_retry_after += 1
                wait = min(float(answer.headers["Retry-After"]), self.max_retry_wait_s)
                await asyncio.sleep(wait)
                continue
            raise AssertionError(f"unexpected answer {answer.status_code}: {answer.text}")


@dataclass
class Reconciliation:
    scenario: str
    accepted: int
    routed: int
    duplicates: int
    lost: int
    recovery_s: float | None
    dead_lettered: int
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "accepted": self.accepted,
            "routed": self.routed,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "recovery_s": self.recovery_s,
            "dead_lettered": self.dead_lettered,
        }


async def routed_count(engine: AsyncEngine, ids: set[str]) -> int:
    routed = await rows(engine, "SELECT id FROM issues WHERE status = 'routed'")
    return len({_hex(r[0]) for r in routed} & {_hex(i) for i in ids})


async def not_routed(engine: AsyncEngine, ids: set[str]) -> list[tuple[str, str, str]]:
    """Of ``ids``, the issues not routed: id, status and when it last changed."""
    found = await rows(engine, "SELECT id, status, updated_at FROM issues WHERE status <> 'routed'")
    wanted = {_hex(i) for i in ids}
    return [(_hex(i), status, str(at)) for i, status, at in found if _hex(i) in wanted]


async def wait_until_routed(
    engine: AsyncEngine, ids: set[str], *, timeout_s: float
) -> float | None:
    """``time.monotonic()`` when every id was seen routed, or None if the timeout came first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await routed_count(engine, ids) == len(ids):
            return time.monotonic()
        await asyncio.sleep(0.25)
    return None


async def duplicates(engine: AsyncEngine) -> dict[str, int]:
    """Effects that happened more than once (each must be zero)."""
    return {
        "timeline steps": int(
            await scalar(
                engine,
                "SELECT count(*) FROM (SELECT issue_id, status FROM issue_events "
                "GROUP BY issue_id, status HAVING count(*) > 1) AS d",
            )
        ),
        "classifications": int(
            await scalar(
                engine,
                "SELECT count(*) FROM (SELECT issue_id FROM classifications "
                "GROUP BY issue_id HAVING count(*) > 1) AS d",
            )
        ),
        "microsoft requests": int(
            await scalar(
                engine,
                "SELECT (SELECT count(*) FROM microsoft_requests) - "
                "(SELECT count(DISTINCT microsoft_request_id) FROM issues "
                "WHERE microsoft_request_id IS NOT NULL)",
            )
        ),
        "webhook deliveries": int(
            await scalar(
                engine,
                "SELECT count(*) FROM (SELECT issue_id, subscription_id FROM webhook_deliveries "
                "GROUP BY issue_id, subscription_id HAVING count(*) > 1) AS d",
            )
        ),
    }


async def half_written(engine: AsyncEngine) -> int:
    """Issues stored without their timeline step or without the event announcing them."""
    issues = {_hex(r[0]) for r in await rows(engine, "SELECT id FROM issues")}
    stepped = {
        _hex(r[0])
        for r in await rows(engine, "SELECT issue_id FROM issue_events WHERE status = 'received'")
    }
    announced = {
        _hex(r[0])
        for r in await rows(
            engine, "SELECT aggregate_id FROM outbox WHERE event_type = 'csp.issue.received'"
        )
    }
    return len(issues - stepped) + len(issues - announced)


async def webhooks_not_settled(engine: AsyncEngine) -> int:
    """Deliveries neither succeeded nor parked (exhausted, kept for redelivery)."""
    return int(
        await scalar(
            engine,
            "SELECT count(*) FROM webhook_deliveries WHERE status NOT IN ('succeeded', "
            "'exhausted')",
        )
    )


async def dead_letters(bootstrap: str, prefix: str) -> dict[str, list[Any]]:
    """Every record in the consumed topics' DLQs."""
    found: dict[str, list[Any]] = {}
    for topic in CONSUMED_TOPICS:
        found[topic] = await read_topic(bootstrap, f"{prefix}{topic}.dlq")
    return found


@contextlib.asynccontextmanager
async def loading(load: PsaLoad) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(load.run())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _hex(value: Any) -> str:
    return str(value).replace("-", "").lower()


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    head = "| scenario | accepted | routed | duplicates | lost | recovery s | DLQ |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        recovery = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.1f}"
        lines.append(
            f"| {r['scenario']} | {r['accepted']} | {r['routed']} | {r['duplicates']} | "
            f"{r['lost']} | {recovery} | {r['dead_lettered']} |"
        )
    return lines


async def group_report(bootstrap: str, prefix: str) -> str:
    """For a failed reconciliation: each consumer group that moves an issue on (the
    reconciler's, :data:`shared.reconciler.STUCK_STATES`), its members and their partitions,
    and per partition the group's committed offset against the log's end. Says what it could not
    read instead of raising: it is written into an assertion's message."""
    settings = kafka(bootstrap, prefix)
    names = TopicNames(prefix)
    groups = {
        group_id(settings, consumer): names(event.TOPIC)
        for event, consumer in STUCK_STATES.values()
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    lines: list[str] = []
    try:
        await admin.start()
        await reader.start()
        await reader.topics()  # fresh metadata
        partitions = {
            topic: [
                TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())
            ]
            for topic in groups.values()
        }
        ends = await _fetched_ends(reader, [tp for tps in partitions.values() for tp in tps])
        for group, topic in groups.items():
            lines.append(f"group {group}:")
            lines.extend(await _members(admin, group))
            lines.extend(await _offsets(admin, group, topic, partitions[topic], ends))
    except Exception as exc:  # a report about a broken broker must not hide the failure
        lines.append(f"  (broker not readable: {exc!r})")
    finally:
        await reader.stop()
        await admin.close()
    return "\n".join(lines)


async def _members(admin: AIOKafkaAdminClient, group: str) -> list[str]:
    lines = []
    for response in await admin.describe_consumer_groups([group]):
        for described in response.groups:
            _error, _group, state, _protocol_type, _protocol, members = described[:6]
            lines.append(f"  state {state}, {len(members)} members")
            for member in members:
                member_id, client_host, raw = member[0], member[-3], member[-1]
                lines.append(f"  member {member_id} ({client_host}): {_held(raw)}")
    return lines


def _held(raw: bytes) -> str:
    """A member's partitions, from its assignment as the group's leader wrote it (the embedded
    broker does not report it)."""
    if not raw:
        return "assignment not reported"
    assignment = ConsumerProtocolMemberAssignment.decode(raw)
    held = sorted(
        (topic, partition)
        for topic, partitions in assignment.assignment
        for partition in partitions
    )
    return str(held)


async def _offsets(
    admin: AIOKafkaAdminClient,
    group: str,
    topic: str,
    partitions: list[TopicPartition],
    ends: dict[TopicPartition, int],
) -> list[str]:
    if not partitions:
        return [f"  {topic}: not on the broker"]
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return [
        f"  {tp.topic}/{tp.partition}: committed {_offset(committed.get(tp))}, log end {ends[tp]}"
        for tp in partitions
    ]


async def _fetched_ends(
    reader: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The partitions' ends as a fetch reports them: the embedded broker's answer to an offset
    query is short of the end when the last batch holds several records
    (:mod:`shared.kafka.offsets`)."""
    if not partitions:
        return {}
    reader.assign(partitions)
    await reader.seek_to_end(*partitions)
    await reader.getmany(*partitions, timeout_ms=500)
    return await log_ends(reader, partitions, fetched_within_s=30)


def _offset(meta: OffsetAndMetadata | None) -> str:
    return "none" if meta is None or meta.offset < 0 else str(meta.offset)
