"""Prometheus metrics shared by the services (declared once, labelled per service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "escalation_http_requests_total", "HTTP requests", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "escalation_http_request_seconds", "HTTP request latency", ["service", "route", "method"]
)
EVENTS_CONSUMED = Counter(
    "escalation_events_consumed_total", "Events consumed", ["consumer", "topic", "result"]
)
BATCH_SIZE = Histogram(
    "escalation_batch_size",
    "Items handled together: a consumer's records in one transaction, a relay pass's rows, "
    "the requests of one intake group read or write",
    ["stage", "name"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
PROCESSING_SECONDS = Histogram(
    "escalation_event_processing_seconds", "Time to process one event", ["consumer"]
)
CONSUMER_LAG = Gauge(
    "escalation_consumer_lag_records",
    "Records between a consumer's position and the partition end",
    ["consumer", "topic", "partition"],
)
EVENTS_PRODUCED = Counter(
    "escalation_events_produced_total", "Events published to Kafka", ["service", "topic"]
)
DLQ_RECORDS = Counter(
    "escalation_dlq_records_total", "Records sent to a DLQ", ["consumer", "topic"]
)
OUTBOX_PUBLISHED = Counter(
    "escalation_outbox_published_total", "Outbox rows published to Kafka", ["service"]
)
OUTBOX_BACKLOG = Gauge(
    "escalation_outbox_backlog", "Outbox rows not yet published to Kafka", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "escalation_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox row", ["service"]
)
RECONCILED = Counter(
    "escalation_reconciled_total", "Events re-driven by the reconciler", ["status"]
)
RECONCILE_QUEUED = Counter(
    "escalation_reconcile_queued_total",
    "Stuck issues the reconciler left alone because their event may still be queued",
    ["status"],
)
WEBHOOK_ATTEMPTS = Counter(
    "escalation_webhook_attempts_total", "Webhook delivery attempts", ["outcome"]
)
WEBHOOK_LATENCY = Histogram("escalation_webhook_seconds", "Webhook attempt latency")
WEBHOOK_DELIVERIES = Gauge(
    "escalation_webhook_deliveries", "Webhook deliveries by state, all partners", ["state"]
)
MICROSOFT_REQUESTS = Counter(
    "escalation_microsoft_requests_opened_total", "Microsoft request records opened", ["vehicle"]
)
MICROSOFT_REQUESTS_BY_STATUS = Gauge(
    "escalation_microsoft_requests",
    "Microsoft request records by status (those folded into a cluster's record excluded)",
    ["status"],
)
MICROSOFT_REQUESTS_OVERDUE = Gauge(
    "escalation_microsoft_requests_overdue",
    "Microsoft requests past their first-response target and still without an answer",
)
PARTNER_CENTER_CALLS = Counter(
    "escalation_partner_center_calls_total",
    "Partner Center calls after their retries",
    ["operation", "outcome"],
)
PARTNER_CENTER_SUBMISSIONS = Counter(
    "escalation_partner_center_submissions_total",
    "Microsoft request records the connector filed or gave up on",
    ["outcome"],
)
