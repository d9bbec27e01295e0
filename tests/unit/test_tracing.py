"""Trace context in Kafka headers; spans leave the process only when an endpoint is set."""

from __future__ import annotations

import secrets
from contextlib import AbstractContextManager

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.ops import ServiceApp
from shared.observability.tracing import (
    build_provider,
    continued_from,
    continued_span,
    current_trace_id,
    trace_headers,
)
from shared.settings import TracingSettings


def processors(settings: TracingSettings) -> tuple[object, ...]:
    provider = build_provider(settings, service="test")
    return tuple(provider._active_span_processor._span_processors)


def test_no_exporter_is_configured_without_an_endpoint() -> None:
    assert processors(TracingSettings()) == ()


def test_an_otlp_endpoint_adds_a_batch_exporter() -> None:
    [processor] = processors(TracingSettings(exporter_otlp_endpoint="http://collector:4318"))
    assert isinstance(processor, BatchSpanProcessor)


def test_a_trace_carried_in_headers_is_current_inside_and_only_inside_the_block() -> None:
    trace_id = secrets.token_hex(16)
    headers = [("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01".encode())]
    assert current_trace_id() is None
    with continued_from(headers):
        assert current_trace_id() == trace_id
        [value] = [v for n, v in trace_headers() if n == "traceparent"]
        assert value.decode().split("-")[1] == trace_id
    assert current_trace_id() is None
    assert trace_headers() == []


def test_headers_without_a_trace_change_nothing() -> None:
    with continued_from([("content-type", b"application/cloudevents+json")]):
        assert current_trace_id() is None


def test_without_an_endpoint_spans_record_nothing_but_still_carry_a_trace() -> None:
    tracer = build_provider(TracingSettings(), service="test").get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        assert not span.is_recording()
        assert current_trace_id() is not None
        assert [n for n, _ in trace_headers()] == ["traceparent"]


def test_with_an_endpoint_spans_are_sampled_at_the_configured_ratio() -> None:
    settings = TracingSettings(exporter_otlp_endpoint="http://collector:4318")
    sampler = build_provider(settings, service="test").sampler
    assert sampler.get_description().startswith("ParentBased{root:TraceIdRatioBased{1.0}")


def carried() -> tuple[str, list[tuple[str, bytes]]]:
    trace_id = secrets.token_hex(16)
    return trace_id, [("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01".encode())]


def consumer_span(
    tracer: trace.Tracer, headers: list[tuple[str, bytes]]
) -> AbstractContextManager[None]:
    return continued_span(tracer, "t process", headers, attributes=lambda: {"offset": 7})


def test_unrecorded_a_consumer_continues_the_records_trace_without_a_span_of_its_own() -> None:
    tracer = build_provider(TracingSettings(), service="test").get_tracer("test")
    trace_id, headers = carried()
    with consumer_span(tracer, headers):
        assert current_trace_id() == trace_id
        assert trace_headers() == headers, "what it publishes names the record's own span"
    assert current_trace_id() is None


def test_unrecorded_a_record_that_carries_no_trace_begins_one() -> None:
    tracer = build_provider(TracingSettings(), service="test").get_tracer("test")
    with consumer_span(tracer, [("content-type", b"application/json")]):
        assert current_trace_id() is not None
        assert [n for n, _ in trace_headers()] == ["traceparent"]
    assert current_trace_id() is None


def test_recorded_a_consumer_span_is_a_child_in_the_records_trace() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    trace_id, headers = carried()
    with consumer_span(provider.get_tracer("test"), headers):
        assert current_trace_id() == trace_id
        assert trace_headers() != headers
    [span] = exported.get_finished_spans()
    assert (span.name, span.kind, dict(span.attributes or {})) == (
        "t process",
        trace.SpanKind.CONSUMER,
        {"offset": 7},
    )
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None


def traced_app(settings: TracingSettings) -> ServiceApp:
    app = ServiceApp(tracing=settings)
    seen: dict[str, str | None] = {}

    @app.get("/v1/trace")
    async def current() -> dict[str, str | None]:
        return {"trace_id": current_trace_id()}

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Where the intake's catch-all logs: outside every middleware the app adds.
        seen["trace_id"] = current_trace_id()
        return JSONResponse({}, status_code=500)

    app.add_exception_handler(Exception, unexpected)
    app.state.seen = seen
    return app


async def test_without_an_endpoint_a_request_continues_its_callers_trace_to_the_end() -> None:
    """(With an endpoint FastAPI's own tracing does this: the end-to-end tests cover it.)"""
    app = traced_app(TracingSettings())
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        assert (await client.get("/v1/trace", headers=headers)).json() == {"trace_id": trace_id}
        assert (await client.get("/v1/boom", headers=headers)).status_code == 500
        assert (await client.get("/v1/trace")).json() != {"trace_id": trace_id}
    assert app.state.seen == {"trace_id": trace_id}
    assert current_trace_id() is None, "nothing of the request's trace outlives it"
