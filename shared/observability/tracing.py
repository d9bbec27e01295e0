"""OpenTelemetry: one tracer provider per process, W3C trace context carried in Kafka headers.

The provider is configured in ``main()``. Without it the API's no-op tracer is used, context
still passes through unchanged, and nothing is exported. Without an OTLP endpoint the provider
still gives every request and event a trace id (for the logs and the Kafka headers), but its
spans record nothing: there is nowhere to send them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased

from shared.settings import TracingSettings

TRACER_NAME = "csp-escalation"
_configured: list[TracerProvider] = []


def configure_tracing(settings: TracingSettings, *, service: str) -> TracerProvider:
    """Install the process's tracer provider (once)."""
    if _configured:
        return _configured[0]
    provider = build_provider(settings, service=service)
    trace.set_tracer_provider(provider)
    _configured.append(provider)
    return provider


def build_provider(settings: TracingSettings, *, service: str) -> TracerProvider:
    """A tracer provider that exports over OTLP/HTTP only if an endpoint is set."""
    # Unsampled spans still carry ids and propagate, at a fraction of a recorded span's cost.
    sampler: Sampler = (
        ParentBased(TraceIdRatioBased(settings.traces_sampler_arg))
        if settings.exporting
        else ALWAYS_OFF
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"csp-escalation-{service}"}),
        sampler=sampler,
    )
    if settings.exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def shutdown_tracing() -> None:
    """Flush spans still queued for export (called when the process stops)."""
    for provider in _configured:
        provider.shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


@contextmanager
def continued_from(headers: Iterable[tuple[str, bytes]] | Mapping[str, str]) -> Iterator[None]:
    """Make the trace context carried by ``headers`` current (no-op when they carry none)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {
        name.lower(): value.decode(errors="replace") if isinstance(value, bytes) else value
        for name, value in pairs
    }
    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def recorded(tracer: trace.Tracer) -> bool:
    """Whether ``tracer``'s spans may be recorded: with an OTLP endpoint (see
    :func:`build_provider`); not with the API's no-op tracer (no provider configured)."""
    return getattr(tracer, "sampler", ALWAYS_OFF) is not ALWAYS_OFF


@contextmanager
def continued_span(
    tracer: trace.Tracer,
    name: str,
    headers: Iterable[tuple[str, bytes]],
    *,
    attributes: Callable[[], dict[str, str | int]],
) -> Iterator[None]:
    """A consumer span, in the trace that a record's ``headers`` carry.

    Where ``tracer``'s spans are not recorded (:func:`recorded`), no span is started for a
    record that continues a trace: its context is made current as it came, so the work's log
    lines and the events it publishes carry the same trace id, without the cost of a span
    that nothing would see. A record that carries no trace begins one, as with recording on.
    """
    with continued_from(headers):
        if not recorded(tracer) and trace.get_current_span().get_span_context().is_valid:
            yield
            return
        with tracer.start_as_current_span(
            name, kind=trace.SpanKind.CONSUMER, attributes=attributes()
        ):
            yield


_CARRIED = frozenset({b"traceparent", b"tracestate", b"baggage"})


@contextmanager
def unrecorded_request(
    tracer: trace.Tracer, method: str, headers: Iterable[tuple[bytes, bytes]]
) -> Iterator[None]:
    """A server span for an HTTP request when spans are not exported: it continues the trace
    the request's (ASGI) ``headers`` carry, or begins one, so the request's log lines and the
    events it publishes carry a trace id. Nothing about the request is gathered for it: with
    nowhere to send a span, its attributes would be built only to be dropped."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in _CARRIED
    }
    parent = propagate.extract(carrier) if carrier else None
    span = tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        yield
    finally:
        context.detach(token)
        span.end()


def current_trace_id() -> str | None:
    span = trace.get_current_span().get_span_context()
    return format(span.trace_id, "032x") if span.is_valid else None
