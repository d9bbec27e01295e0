"""Reading topics and DLQs from the outside: ``topics tail``, ``dlq list`` and ``dlq replay``.

None of this joins a service's consumer group, so looking never moves the services' offsets.
``dlq replay`` keeps its own group per DLQ, so a record is re-driven once however often it runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from shared.events.envelope import InvalidMessage, decode
from shared.events.models import TOPICS
from shared.kafka.producer import create_producer
from shared.kafka.topics import DLQ_SUFFIX, TopicNames
from shared.settings import KafkaSettings

DLQ_HEADER_PREFIX = "dlq."


class UnknownTopic(ValueError):
    """Not one of our topics (or DLQs)."""


def base_topic(names: TopicNames, topic: str) -> str:
    """The logical topic behind ``topic``, given with or without the prefix and ``.dlq``."""
    logical = topic.removeprefix(names.prefix) if names.prefix else topic
    base = logical.removesuffix(DLQ_SUFFIX)
    if base not in TOPICS:
        known = ", ".join(TOPICS)
        raise UnknownTopic(
            f"unknown topic {topic!r}; the topics are {known} (each with {DLQ_SUFFIX})"
        )
    return base


def physical_topic(names: TopicNames, topic: str) -> str:
    """``issues.routed`` or ``issues.routed.dlq`` (with or without the prefix) → physical name."""
    base = base_topic(names, topic)
    dead = (topic.removeprefix(names.prefix) if names.prefix else topic).endswith(DLQ_SUFFIX)
    return names.dlq(base) if dead else names(base)


def parse_filters(pairs: Sequence[str]) -> dict[str, str]:
    """``["outcome=escalated_to_microsoft", "type=csp.issue.routed"]`` → a mapping."""
    filters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"a filter is NAME=VALUE, got {pair!r}")
        filters[name.strip()] = value.strip()
    return filters


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record, decoded where it is a valid event."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None
    headers: dict[str, str]
    event: dict[str, Any] | None
    problem: str | None = None

    def field(self, name: str) -> object:
        """Filter look-up: a CloudEvents attribute, a dotted ``data`` path, or a header."""
        if self.event is not None:
            if name in self.event and name != "data":
                return self.event[name]
            value: object = self.event.get("data", {})
            for part in name.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    value = None
                    break
                value = value[part]
            if value is not None:
                return value
        return self.headers.get(name)

    def matches(self, filters: Mapping[str, str]) -> bool:
        return all(_text(self.field(name)) == value for name, value in filters.items())

    def pretty(self) -> str:
        when = self.timestamp.isoformat(timespec="milliseconds") if self.timestamp else "-"
        head = f"{self.topic}[{self.partition}]@{self.offset}  {when}  key={self.key or '-'}"
        if self.event is None:
            return f"{head}\n  not a valid event: {self.problem}\n"
        attrs = f"  {self.event.get('type')}  id={self.event.get('id')}"
        body = json.dumps(self.event.get("data"), indent=2, ensure_ascii=False, sort_keys=True)
        return head + "\n" + attrs + "\n" + _indent(body) + "\n"

    def as_json(self, **extra: object) -> str:
        return json.dumps(
            {
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "key": self.key,
                "headers": self.headers,
                "event": self.event,
                "problem": self.problem,
                **extra,
            },
            ensure_ascii=False,
        )


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def to_record(record: ConsumerRecord) -> TopicRecord:
    headers = {name: raw.decode(errors="replace") for name, raw in (record.headers or ())}
    event: dict[str, Any] | None = None
    problem = None
    try:
        decode(record.value, list(record.headers or ()))
        event = json.loads(record.value)
    except (InvalidMessage, ValueError) as exc:
        problem = str(exc)
    stamp = (
        datetime.fromtimestamp(record.timestamp / 1000).astimezone()
        if record.timestamp and record.timestamp > 0
        else None
    )
    return TopicRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=stamp,
        key=record.key.decode(errors="replace") if record.key is not None else None,
        headers=headers,
        event=event,
        problem=problem,
    )


def _consumer(kafka: KafkaSettings, *, group_id: str | None, earliest: bool) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id}-inspect",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if earliest else "latest",
        request_timeout_ms=kafka.request_timeout_ms,
    )


async def _assign_all(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # Public ``topics()`` fetches metadata into a copy; this refreshes the client's own.
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise UnknownTopic(f"topic {topic!r} does not exist on the broker yet")
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    return assigned


async def _past_what_is_there(
    consumer: AIOKafkaConsumer, assigned: list[TopicPartition], *, rounds: int = 10
) -> None:
    """Move each partition's position up to the high watermark its fetches report.

    ``seek_to_end`` can land inside the last batch (see :mod:`shared.kafka.offsets`): fetch
    from there until a fetch brings nothing, moving on to the high watermark each time (bounded,
    for a topic that never pauses)."""
    for _ in range(rounds):
        if not await consumer.getmany(*assigned, timeout_ms=100):
            return
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is not None and high > await consumer.position(tp):
                consumer.seek(tp, high)


async def tail(
    kafka: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = False,
    filters: Mapping[str, str] | None = None,
    limit: int | None = None,
    idle_timeout_s: float | None = None,
    positioned: Callable[[str], None] | None = None,
) -> AsyncIterator[TopicRecord]:
    """Yield records of ``topic`` (a logical name) that match every filter, as they arrive.

    Stops after ``limit`` matches, or after ``idle_timeout_s`` without a record; otherwise
    follows the topic until cancelled. ``positioned`` is told the physical topic once every
    partition has its start offset, so nothing published after that call is missed.
    """
    physical = physical_topic(TopicNames(kafka.topic_prefix), topic)
    consumer = _consumer(kafka, group_id=None, earliest=from_beginning)
    try:
        await consumer.start()
        assigned = await _assign_all(consumer, physical)
        if from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        for tp in assigned:
            await consumer.position(tp)  # resolves the offsets now, not at the first fetch
        if not from_beginning:
            await _past_what_is_there(consumer, assigned)
        if positioned is not None:
            positioned(physical)
        matched = 0
        idle = 0.0
        poll_s = 0.5
        while limit is None or matched < limit:
            batch = await consumer.getmany(timeout_ms=int(poll_s * 1000), max_records=500)
            if not batch:
                idle += poll_s
                if idle_timeout_s is not None and idle >= idle_timeout_s:
                    return
                continue
            idle = 0.0
            for records in batch.values():
                for raw in records:
                    record = to_record(raw)
                    if record.matches(filters or {}):
                        matched += 1
                        yield record
                        if limit is not None and matched >= limit:
                            return
    finally:
        await consumer.stop()


def replay_group(kafka: KafkaSettings, dlq_topic: str) -> str:
    return f"{kafka.topic_prefix}csp-escalation.dlq-replay.{dlq_topic}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: TopicRecord
    replayed: bool

    @property
    def reason(self) -> str:
        return self.record.headers.get("dlq.reason", "")


async def _read_to_end(
    consumer: AIOKafkaConsumer, assigned: list[TopicPartition]
) -> list[ConsumerRecord]:
    """Every record up to each partition's end as its first fetch reported it (later arrivals
    wait): a fetch's high watermark, not the offset query :mod:`shared.kafka.offsets` warns of."""
    ends: dict[TopicPartition, int] = {}
    out: list[ConsumerRecord] = []
    remaining = set(assigned)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
        for tp in remaining:
            high = consumer.highwater(tp)
            if tp not in ends and high is not None:
                ends[tp] = high
        for tp, records in batch.items():
            out.extend(r for r in records if r.offset < ends[tp])
        remaining = {
            tp for tp in remaining if tp not in ends or await consumer.position(tp) < ends[tp]
        }
    return out


async def list_dead_letters(kafka: KafkaSettings, topic: str) -> list[DeadLetter]:
    """Every record in ``topic``'s DLQ, oldest first, marked when ``replay`` has re-driven it."""
    names = TopicNames(kafka.topic_prefix)
    dlq = names.dlq(base_topic(names, topic))
    consumer = _consumer(kafka, group_id=replay_group(kafka, dlq), earliest=True)
    try:
        await consumer.start()
        assigned = await _assign_all(consumer, dlq)
        replayed_up_to = {tp: await consumer.committed(tp) or 0 for tp in assigned}
        await consumer.seek_to_beginning(*assigned)
        records = await _read_to_end(consumer, assigned)
    finally:
        await consumer.stop()
    return [
        DeadLetter(
            record=to_record(r),
            replayed=r.offset < replayed_up_to[TopicPartition(r.topic, r.partition)],
        )
        for r in records
    ]


@dataclass(frozen=True, slots=True)
class Replay:
    target: str
    replayed: list[TopicRecord]


async def replay_dead_letters(
    kafka: KafkaSettings,
    topic: str,
    *,
    offsets: Sequence[int] = (),
    dry_run: bool = False,
) -> Replay:
    """Re-publish DLQ records to the topic they came from, unchanged but for the ``dlq.*`` headers.

    Without ``offsets``: every record not replayed before, and the position is remembered. With
    ``offsets``: exactly those records (again, if asked), leaving the position as it is. A
    record that still cannot be processed comes back to the DLQ with its new reason.
    """
    names = TopicNames(kafka.topic_prefix)
    base = base_topic(names, topic)
    target, dlq = names(base), names.dlq(base)
    consumer = _consumer(kafka, group_id=replay_group(kafka, dlq), earliest=True)
    try:
        await consumer.start()
        assigned = await _assign_all(consumer, dlq)
        if offsets:
            await consumer.seek_to_beginning(*assigned)
        else:
            for tp in assigned:
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        records = await _read_to_end(consumer, assigned)
        wanted = set(offsets)
        chosen = [r for r in records if not wanted or r.offset in wanted]
        if not dry_run:
            await _publish(kafka, target, chosen)
            if not wanted and records:
                await consumer.commit(_after(records))
    finally:
        await consumer.stop()
    return Replay(target=target, replayed=[to_record(r) for r in chosen])


def _after(records: list[ConsumerRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
    last: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        last[tp] = max(last.get(tp, -1), r.offset)
    return {tp: OffsetAndMetadata(offset + 1, "") for tp, offset in last.items()}


async def _publish(kafka: KafkaSettings, target: str, records: list[ConsumerRecord]) -> None:
    if not records:
        return
    producer = create_producer(kafka, service="dlq-replay")
    try:
        # Inside: a producer whose start failed is closed too, not reported unclosed later.
        await producer.start()
        sends = [
            await producer.send(
                target,
                value=r.value,
                key=r.key,
                headers=[
                    (name, raw)
                    for name, raw in (r.headers or ())
                    if not name.startswith(DLQ_HEADER_PREFIX)
                ],
            )
            for r in records
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
