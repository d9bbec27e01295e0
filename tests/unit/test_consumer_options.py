"""What a consumer loop asks of its Kafka client."""

from __future__ import annotations

from typing import Any

import pytest

from services.classifier.app import HEALTH_FEED_FETCH_MAX_WAIT_MS
from shared.kafka import consumer as consumer_module
from shared.kafka.consumer import ConsumerLoop, ConsumerSpec
from shared.settings import ConsumerSettings, KafkaSettings


class _Built(Exception):
    pass


@pytest.mark.parametrize(("own", "expected"), [(None, 50), (HEALTH_FEED_FETCH_MAX_WAIT_MS, 500)])
async def test_a_fetch_waits_as_long_as_the_spec_says_else_as_the_settings_say(
    monkeypatch: pytest.MonkeyPatch, own: int | None, expected: int
) -> None:
    built: dict[str, Any] = {}

    def client(**options: Any) -> None:
        built.update(options)
        raise _Built

    async def handler(*_: object) -> None:
        return None

    monkeypatch.setattr(consumer_module, "AIOKafkaConsumer", client)
    loop = ConsumerLoop(
        ConsumerSpec(name="t", topic="health.incidents", handler=handler, fetch_max_wait_ms=own),
        uow_factory=None,  # type: ignore[arg-type]  # never reached
        kafka=KafkaSettings(),
        settings=ConsumerSettings(fetch_max_wait_ms=50),
    )
    with pytest.raises(_Built):
        loop._client()
    assert built["fetch_max_wait_ms"] == expected
