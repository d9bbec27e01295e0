"""Kafka clients are closed on every way out: one that fails to close or to start is not left
open beside the others (aiokafka reports a producer never stopped as unclosed when it is
collected, and its connections and tasks live on until then)."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.kafka import inspect, topics
from shared.kafka.backlog import GroupBacklog
from shared.settings import KafkaSettings


class _Client:
    closed = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.closed = True

    async def close(self) -> None:
        self.closed = True


class _FailsToStop(_Client):
    async def stop(self) -> None:
        raise KafkaConnectionError("the broker went away")


class _FailsToStart(_Client):
    async def start(self) -> None:
        raise KafkaConnectionError("the broker does not answer")


async def test_the_backlogs_admin_client_is_closed_when_its_consumer_fails_to_stop() -> None:
    backlog = GroupBacklog(KafkaSettings())
    admin = _Client()
    backlog._admin, backlog._consumer = admin, _FailsToStop()
    await backlog.close()
    assert admin.closed


async def test_a_replay_producer_that_fails_to_start_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = _FailsToStart()
    monkeypatch.setattr(inspect, "create_producer", lambda *_, **__: producer)
    with pytest.raises(KafkaConnectionError, match="does not answer"):
        await inspect._publish(KafkaSettings(), "issues.received", [object()])
    assert producer.closed


async def test_an_admin_client_that_fails_to_start_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each consumer client and each relay producer begins with ``ensure_topics``, so while the
    broker is away this runs again and again."""
    made: list[_FailsToStart] = []

    def admin(**_: object) -> _FailsToStart:
        made.append(_FailsToStart())
        return made[-1]

    monkeypatch.setattr(topics, "AIOKafkaAdminClient", admin)
    with pytest.raises(KafkaConnectionError):
        await topics.ensure_topics(KafkaSettings())
    assert [client.closed for client in made] == [True]
