"""The record batches the services' producer builds (the outbox relay fills them itself)."""

from __future__ import annotations

import pytest

from shared.kafka.producer import create_producer
from shared.settings import KafkaSettings

pytestmark = pytest.mark.unit

RECORD = b"x" * 10_000


def _records_in_one_batch(settings: KafkaSettings, value: bytes = RECORD) -> int:
    producer = create_producer(settings, service="test")
    batch = producer.create_batch()
    fitted = 0
    while batch.append(key=b"k", value=value, timestamp=None) is not None:
        fitted += 1
        if fitted > 1_000:
            break
    return fitted


async def test_a_batch_holds_records_up_to_the_configured_size() -> None:
    assert 24 <= _records_in_one_batch(KafkaSettings(producer_batch_bytes=256 * 1024)) <= 26
    assert _records_in_one_batch(KafkaSettings(producer_batch_bytes=64 * 1024)) == 6


async def test_the_default_batch_holds_a_relay_pass_of_several_events() -> None:
    assert _records_in_one_batch(KafkaSettings()) >= 20


async def test_a_record_larger_than_a_batch_goes_alone_in_an_empty_one() -> None:
    """The relay puts every record into a batch; an event of the intake's largest size (a
    64 Ki-character description, up to four bytes each) still fits an empty one."""
    assert _records_in_one_batch(KafkaSettings(producer_batch_bytes=16 * 1024), b"y" * 300_000) == 1
