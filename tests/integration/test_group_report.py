"""The fault suite's report on a failed reconciliation reads each consumer group from the
broker: its members, and per partition the committed offset against the log's end."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka.topics import CLASSIFIER, TopicNames, ensure_topics, group_id
from tests.support.broker import kafka, one_batch
from tests.support.faults import group_report


async def test_the_report_shows_a_groups_members_and_where_it_stands_on_each_partition(
    bootstrap_servers: str, topic_prefix: str
) -> None:
    settings = kafka(bootstrap_servers, topic_prefix)
    await ensure_topics(settings)
    topic = TopicNames(topic_prefix)("issues.received")
    # Partition 0 ends with a batch of several records, as a relay writes them: the embedded
    # broker's offset query would put its end at 2, a fetch at 5.
    await one_batch(settings, topic, [(b"{}", [])])
    await one_batch(settings, topic, [(b"{}", [])] * 4)
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id(settings, CLASSIFIER),
        enable_auto_commit=False,
    )
    await member.start()
    try:
        await member.commit({TopicPartition(topic, 0): 2})
        report = await group_report(bootstrap_servers, topic_prefix)
    finally:
        await member.stop()

    lines = report.splitlines()
    assert f"group {group_id(settings, CLASSIFIER)}:" in lines
    assert "  state Stable, 1 members" in lines, report
    assert f"  {topic}/0: committed 2, log end 5" in lines, report
    assert f"  {topic}/1: committed none, log end 0" in lines, report
    assert "broker not readable" not in report
