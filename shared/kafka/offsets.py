"""Where a partition's log ends.

The embedded broker answers an offset query for a partition's end (ListOffsets, latest) with
the first offset of the partition's last record batch plus one: short of the end by the rest
of that batch when it holds several records, as a relay's batches do. A fetch's high watermark
is right on every broker, so whoever needs the end takes it from a fetch where one is recent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition


async def log_ends(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    *,
    fetched_within_s: float,
    fetched_only: bool = False,
) -> dict[TopicPartition, int]:
    """Each partition's end offset: the high watermark of a fetch of it answered within
    ``fetched_within_s``, else the broker's answer to an offset query (one for all of those);
    ``fetched_only``: no query, such partitions are left out."""
    oldest_ms = time.time() * 1000 - fetched_within_s * 1000
    assigned = consumer.assignment()
    ends: dict[TopicPartition, int] = {}
    for tp in partitions:
        if tp not in assigned:
            continue
        high = consumer.highwater(tp)
        fetched_ms = consumer.last_poll_timestamp(tp)
        if high is not None and fetched_ms is not None and fetched_ms >= oldest_ms:
            ends[tp] = high
    unfetched = [tp for tp in partitions if tp not in ends]
    if unfetched and not fetched_only:
        ends.update(await consumer.end_offsets(unfetched))
    return ends
