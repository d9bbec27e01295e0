"""Trace context in Kafka headers; spans leave the process only when an endpoint is set."""

from __future__ import annotations

import secrets

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from services.ops import ServiceApp
from shared.observability.tracing import (
    build_provider,
    continued_from,
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
