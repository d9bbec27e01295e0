"""Metrics on every service, trace context from HTTP through Kafka, ids on every log line."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.ports import free_port
from tests.support.factories import eventually, issue_body, routed_issues, seed_partner
from tests.support.http_server import serving
from tests.support.stack import Stack

pytestmark = pytest.mark.single_db

CORRELATION = ("issue_id", "event_id", "partner_id", "trace_id")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, /, **labels: str
) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, sample_labels), v in metrics.items()
        if n == name and labels.items() <= dict(sample_labels).items()
    )


async def scrape(
    client: httpx.AsyncClient, port: int
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    return samples(answer.text)


async def headers_of(bootstrap_servers: str, topic: str, key: str) -> dict[str, str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, f"no record with key {key} on {topic}"
            for records in batch.values():
                for record in records:
                    if record.key == key.encode():
                        return {name: raw.decode() for name, raw in record.headers}
    finally:
        await consumer.stop()


async def test_a_callers_trace_reaches_every_topic_and_every_log_line_about_the_issue(
    stack: Stack, database_url: str, engine: AsyncEngine, bootstrap_servers: str, topic_prefix: str
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        answer = await client.post(
            "/v1/issues", json=issue_body(), headers={"traceparent": traceparent}
        )
        assert answer.status_code == 202
        issue_id = answer.json()["id"]

    async def routed() -> bool:
        return await routed_issues(engine) == 1

    await eventually(routed, timeout=30, message=stack.logs)
    for topic in ("issues.received", "issues.classified", "issues.routed"):
        headers = await headers_of(bootstrap_servers, f"{topic_prefix}{topic}", issue_id)
        assert headers["traceparent"].split("-")[1] == trace_id, topic

    lines = []
    for name in ("intake", "classifier", "notifier"):
        for raw in stack.services[name].log_path.read_text().splitlines():
            if raw.startswith("{"):
                lines.append((name, json.loads(raw)))
    assert lines
    for name, line in lines:
        assert all(key in line for key in CORRELATION), (name, line)
    about_it = [(name, line) for name, line in lines if line["issue_id"] == issue_id]
    assert {name for name, _ in about_it} >= {"classifier", "notifier"}
    for name, line in about_it:
        assert line["trace_id"] == trace_id, (name, line)
        assert line["partner_id"] == str(partner.id), (name, line)
        if name != "intake":
            assert line["event_id"], (name, line)


async def test_spans_are_exported_over_otlp_only_when_an_endpoint_is_set(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    received: list[bytes] = []

    async def collect(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=200)

    collector = Starlette(routes=[Route("/v1/traces", collect, methods=["POST"])])
    port = free_port()
    stack.extra_env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    stack.extra_env.update(OTEL_BSP_SCHEDULE_DELAY="200")
    partner = await seed_partner(database_url)
    trace_id = secrets.token_hex(16)
    async with serving(collector, port):
        await stack.start()
        async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
            answer = await client.post(
                "/v1/issues",
                json=issue_body(),
                headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
            )
            assert answer.status_code == 202

        async def exported() -> bool:
            spans = [
                span
                for body in received
                for resource in ExportTraceServiceRequest.FromString(body).resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
                if span.trace_id.hex() == trace_id
            ]
            return {s.name for s in spans} >= {
                "POST /v1/issues",
                "issues.received process",
                "issues.classified process",
            }

        await eventually(exported, timeout=30, message=stack.logs)


async def test_every_service_reports_its_metrics(
    stack: Stack, database_url: str, engine: AsyncEngine
) -> None:
    partner = await seed_partner(database_url)
    await stack.start()
    async with httpx.AsyncClient(base_url=stack.intake_url, headers=partner.headers) as client:
        for body in (issue_body(category="bug"), issue_body(category="billing")):
            assert (await client.post("/v1/issues", json=body)).status_code == 202
        assert (await client.get("/v1/issues/not-a-uuid")).status_code in (404, 422)

    async def routed() -> bool:
        return await routed_issues(engine) == 2

    await eventually(routed, timeout=30, message=stack.logs)
    ports = {name: service.port for name, service in stack.services.items()}
    async with httpx.AsyncClient() as client:

        async def reported() -> bool:
            notifier = await scrape(client, ports["notifier"])
            return value(notifier, "escalation_microsoft_requests", status="none") == 1

        await eventually(reported, timeout=20, message="notifier gauges not refreshed")
        intake = await scrape(client, ports["intake"])
        classifier = await scrape(client, ports["classifier"])
        notifier = await scrape(client, ports["notifier"])

    http = "escalation_http_requests_total"
    assert value(intake, http, service="intake", route="/v1/issues", status="202") == 2
    assert value(intake, "escalation_http_request_seconds_count", route="/v1/issues") == 2
    # Any service's outbox relay publishes any committed row, so production is summed.
    produced = "escalation_events_produced_total"
    for topic in ("issues.received", "issues.classified", "issues.routed"):
        total = sum(value(m, produced, topic=topic) for m in (intake, classifier, notifier))
        assert total == 2, topic
    assert ("escalation_outbox_backlog", (("service", "intake"),)) in intake
    assert ("escalation_outbox_oldest_unsent_seconds", (("service", "intake"),)) in intake

    consumed = "escalation_events_consumed_total"
    assert value(classifier, consumed, consumer="classifier", result="processed") == 2
    assert (
        value(classifier, "escalation_event_processing_seconds_count", consumer="classifier") == 2
    )
    lag = {
        dict(labels)["partition"]
        for (name, labels), _ in classifier.items()
        if name == "escalation_consumer_lag_records"
    }
    assert lag == {"0", "1", "2"}, "one lag series per partition (KAFKA_PARTITIONS=3)"
    assert value(classifier, "escalation_consumer_lag_records") == 0

    assert value(notifier, consumed, consumer="notifier", result="processed") == 2
    assert value(notifier, "escalation_microsoft_requests_overdue") == 0
    assert ("escalation_webhook_deliveries", (("state", "pending"),)) in notifier
    assert value(notifier, "escalation_microsoft_requests_opened_total") == 1
    assert value(notifier, http, service="notifier", route="/healthz") >= 1
    assert value(classifier, "escalation_dlq_records_total") == 0

    # Batch sizes: the intake's group reads and writes, each consumer's fetches, every relay
    # pass; every item counted once.
    sizes = "escalation_batch_size_sum"
    assert value(intake, sizes, stage="group", name="accepts") == 2
    assert value(intake, sizes, stage="group", name="key_checks") == 3
    assert value(classifier, sizes, stage="consume", name="classifier") == 2
    assert value(notifier, sizes, stage="consume", name="notifier") == 2
    relayed = sum(value(m, sizes, stage="relay") for m in (intake, classifier, notifier))
    published = "escalation_outbox_published_total"
    assert relayed == sum(value(m, published) for m in (intake, classifier, notifier)) >= 6
