"""Configuration, one pydantic-settings class per concern.

Nothing here is read at import time: each service builds the classes it needs in its
``main()`` or lifespan and passes them down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./var/escalation.db"


class DatabaseSettings(BaseSettings):
    """Where the shared models live: PostgreSQL in production, SQLite embedded."""

    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    url: str = DEFAULT_SQLITE_URL
    # Connections per process (PostgreSQL; on SQLite a process has one, see create_engine).
    pool_size: int = Field(default=10, ge=1, le=200)
    # How long a request or message waits for a pooled connection before it is refused as
    # "database busy" (503 with Retry-After at the intake) rather than queueing without end.
    pool_timeout_s: float = Field(default=10.0, gt=0)
    statement_timeout_s: float = Field(default=15.0, gt=0)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the usual URL spellings and pin the async driver for each backend."""
        for plain in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
            if value.startswith(plain):
                return "postgresql+asyncpg://" + value[len(plain) :]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            return "sqlite+aiosqlite://" + value[len("sqlite://") :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("DATABASE_URL must be a PostgreSQL or SQLite URL")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class KafkaSettings(BaseSettings):
    """Broker connection, topic naming and consumer-group timings."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=5)
    client_id: str = "csp-escalation"
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    rebalance_timeout_ms: int = Field(default=30_000, ge=1_000)
    request_timeout_ms: int = Field(default=15_000, ge=1_000)
    # The largest record batch a producer builds (a relay's pass is cut into one per partition
    # while they fit). aiokafka's 16 KiB default held about eight events: a pass of a thousand
    # rows went out as hundreds of batches, each one work for the client and the broker. Keep
    # it under the broker's message.max.bytes (1 MiB by default); one record larger than this
    # goes out alone in its batch.
    producer_batch_bytes: int = Field(default=256 * 1024, ge=16 * 1024, le=8 * 1024 * 1024)

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "KAFKA_HEARTBEAT_INTERVAL_MS must be at most a third of the session timeout"
            )
        return self


class ConsumerSettings(BaseSettings):
    """How a consumer loop batches, retries and dead-letters."""

    model_config = SettingsConfigDict(env_prefix="CONSUMER_", extra="ignore")

    # The most events one fetch returns and one transaction handles. Under load each batch is
    # full, and its fixed cost (the transaction, the inbox write, the reads for the lot, the
    # relay's produce and marking) is shared by this many events: 500 routed 14 % more issues
    # a second than 100 on the 2-core benchmark machine (README, Benchmark).
    batch_size: int = Field(default=500, ge=1, le=5000)
    poll_timeout_ms: int = Field(default=500, ge=10)
    # The longest a fetch waits at the broker for records. A broker that holds every fetch for
    # this long even when records arrive (the embedded one does) adds it to each hop's latency.
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=5_000)
    # Batches that are not full are at least this far apart, so that under load one
    # transaction serves many events; the first record after a quiet spell is handled at once.
    batch_linger_ms: int = Field(default=25, ge=0, le=5_000)
    # ... and this far apart while events come in at ``loaded_events_per_s`` or faster
    # (shared.spacing): at 1,000 issues/s on the 2-core benchmark machine, 50 and 40 ms (the
    # relay's, OUTBOX_) in place of 25 and 20 took a few per cent off its CPU per issue; at
    # 200/s, where the p99 target is, they would add to each hop's latency (README, Benchmark).
    batch_linger_loaded_ms: int = Field(default=50, ge=0, le=5_000)
    loaded_events_per_s: float = Field(default=500.0, gt=0)
    # While records keep coming, offsets are committed at most this often (an empty fetch
    # commits at once): one broker round trip a second instead of one per batch. After a crash
    # what was handled since is read again, and the inbox skips it.
    commit_interval_ms: int = Field(default=1_000, ge=0, le=60_000)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: float = Field(default=0.2, ge=0)
    # Larger records go to the DLQ unread (their first 64 KiB): the biggest event the intake
    # can cause is about half of this (64 Ki characters of text at up to 4 bytes each).
    max_record_bytes: int = Field(default=512 * 1024, ge=1024)
    # With nothing fetched for this long while the partitions hold more than we have read, the
    # client is rebuilt (a broker that restarted without its data can leave it stuck).
    stall_after_s: float = Field(default=15.0, gt=0)
    # A handled event's id is kept in the inbox this long, then forgotten. Keep it longer than
    # a record can come back: the topics' retention (Kafka's default is 7 days) and the
    # outbox's (OUTBOX_RETENTION_H).
    inbox_retention_h: float = Field(default=14 * 24, gt=0)
    inbox_sweep_interval_s: float = Field(default=600.0, gt=0)


class OutboxSettings(BaseSettings):
    """The relay that moves committed outbox rows to Kafka."""

    model_config = SettingsConfigDict(env_prefix="OUTBOX_", extra="ignore")

    # The most rows one pass publishes and marks: at least a consumer's batch (above), so that
    # what one consumer transaction wrote goes out in one pass.
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    # The longest between two claims from the table (rows this process's writers did not hand
    # to the relay: another process's, released, or with an ended lease).
    poll_interval_s: float = Field(default=0.2, gt=0)
    # Passes are at least this far apart, so under load one produce and one marking carry every
    # row committed meanwhile instead of one each; an idle relay woken by a commit goes at once.
    linger_s: float = Field(default=0.02, ge=0, le=1)
    # ... and this far apart while rows come in at ``loaded_rows_per_s`` or faster (see
    # CONSUMER_BATCH_LINGER_LOADED_MS).
    linger_loaded_s: float = Field(default=0.04, ge=0, le=1)
    loaded_rows_per_s: float = Field(default=500.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0)
    retention_h: float = Field(default=72.0, gt=0)


class ReconcilerSettings(BaseSettings):
    """Re-drives work stuck in one state for longer than ``stuck_after_s``."""

    model_config = SettingsConfigDict(env_prefix="RECONCILER_", extra="ignore")

    enabled: bool = True
    stuck_after_s: float = Field(default=120.0, gt=0)
    interval_s: float = Field(default=15.0, gt=0)
    # How long past ``stuck_after_s`` an issue waits on a consumer the broker says has not
    # reached its event yet; then it is re-driven anyway (see shared.reconciler).
    queued_wait_s: float = Field(default=600.0, gt=0)


class HttpSettings(BaseSettings):
    """Where a service listens."""

    model_config = SettingsConfigDict(env_prefix="HTTP_", extra="ignore")

    host: str = "127.0.0.1"
    intake_port: int = Field(default=8080, ge=0, le=65535)
    classifier_port: int = Field(default=8081, ge=0, le=65535)
    notifier_port: int = Field(default=8082, ge=0, le=65535)


class WebhookSettings(BaseSettings):
    """Outbound webhook delivery."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="ignore")

    timeout_s: float = Field(default=10.0, gt=0)
    # 21 attempts: 5 s doubling to a 6 h cap, each wait jittered to 1/2..1 of its step, span
    # at least 26.7 h (at most 53.4 h) before a delivery is exhausted.
    max_attempts: int = Field(default=21, ge=1, le=100)
    backoff_base_s: float = Field(default=5.0, gt=0)
    backoff_cap_s: float = Field(default=6 * 3600.0, gt=0)
    poll_interval_s: float = Field(default=0.5, gt=0)
    concurrency: int = Field(default=16, ge=1, le=512)
    per_endpoint_concurrency: int = Field(default=4, ge=1, le=64)
    allow_private_targets: bool = False


class AppSettings(BaseSettings):
    """Process-wide switches."""

    model_config = SettingsConfigDict(env_prefix="ESCALATION_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    api_key_pepper: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _production_needs_pepper(self) -> AppSettings:
        if self.environment == "production" and len(self.api_key_pepper.get_secret_value()) < 16:
            raise ValueError("ESCALATION_API_KEY_PEPPER must be set (16+ chars) in production")
        return self


class ClassifierSettings(BaseSettings):
    """Rules, health look-ups and outage correlation."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_", extra="ignore")

    rules_file: Path | None = None
    partner_rules_dir: Path | None = None
    health_timeout_s: float = Field(default=3.0, gt=0, le=60)
    health_cache_ttl_s: float = Field(default=60.0, ge=0)
    correlation_min_tenants: int = Field(default=3, ge=2, le=1000)
    correlation_window_min: float = Field(default=30.0, gt=0, le=24 * 60)

    @field_validator("rules_file", "partner_rules_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rules_file", "partner_rules_dir")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.exists():
            raise ValueError(f"{value} does not exist")
        return value


class GraphSettings(BaseSettings):
    """Microsoft Graph service health, read per customer tenant with the partner's app."""

    model_config = SettingsConfigDict(env_prefix="GRAPH_", extra="ignore")

    enabled: bool = False
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    authority_url: str = "https://login.microsoftonline.com"
    base_url: str = "https://graph.microsoft.com/v1.0"
    requests_per_window: int = Field(default=240, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    max_pages: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _credentials_when_enabled(self) -> GraphSettings:
        if self.enabled and not (self.client_id and self.client_secret.get_secret_value()):
            raise ValueError("GRAPH_ENABLED needs GRAPH_CLIENT_ID and GRAPH_CLIENT_SECRET")
        return self


class MicrosoftRequestSettings(BaseSettings):
    """Microsoft request records: support topics and first-response tracking."""

    model_config = SettingsConfigDict(env_prefix="MICROSOFT_", extra="ignore")

    # Service name (any case) -> Partner Center support topic id, as JSON.
    support_topics: dict[str, str] = Field(default_factory=dict)
    overdue_sweep_s: float = Field(default=60.0, gt=0)


class PartnerCenterSettings(BaseSettings):
    """The optional Partner Center connector: files Microsoft request records and follows them.

    Partner Center's service-request API needs App+User credentials: an Entra ID app of the
    partner's tenant and a refresh token from a consented admin agent's sign-in.
    """

    model_config = SettingsConfigDict(env_prefix="PARTNER_CENTER_", extra="ignore")

    enabled: bool = False
    base_url: str = "https://api.partnercenter.microsoft.com"
    authority_url: str = "https://login.microsoftonline.com"
    tenant_id: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    refresh_token: SecretStr = SecretStr("")
    scope: str = "https://api.partnercenter.microsoft.com/.default offline_access"
    # Vehicles filed through Partner Center; the rest stay records a person files elsewhere.
    vehicles: list[str] = Field(
        default_factory=lambda: [
            "commercial_support",
            "partner_cloud_support",
            "advanced_support_for_partners",
        ]
    )
    # Our partner ids (JSON list) whose requests this account files; empty means every partner.
    partner_ids: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=30.0, gt=0)
    # Tries per call (429, 5xx, timeouts) before the pass gives up and schedules the record again.
    call_attempts: int = Field(default=4, ge=1, le=20)
    retry_base_s: float = Field(default=1.0, ge=0)
    retry_cap_s: float = Field(default=60.0, gt=0)
    # Passes per record before it is marked ``failed`` for a person to file.
    max_submissions: int = Field(default=12, ge=1)
    submit_interval_s: float = Field(default=5.0, gt=0)
    poll_interval_s: float = Field(default=300.0, gt=0)
    batch_size: int = Field(default=20, ge=1, le=500)

    @model_validator(mode="after")
    def _credentials_when_enabled(self) -> PartnerCenterSettings:
        missing = [
            name
            for name, value in (
                ("PARTNER_CENTER_TENANT_ID", self.tenant_id),
                ("PARTNER_CENTER_CLIENT_ID", self.client_id),
                ("PARTNER_CENTER_CLIENT_SECRET", self.client_secret.get_secret_value()),
                ("PARTNER_CENTER_REFRESH_TOKEN", self.refresh_token.get_secret_value()),
            )
            if not value
        ]
        if self.enabled and missing:
            raise ValueError("PARTNER_CENTER_ENABLED needs " + ", ".join(missing))
        return self


class ApiSettings(BaseSettings):
    """Limits of the intake API, per process."""

    model_config = SettingsConfigDict(env_prefix="API_", extra="ignore")

    # Fits a 64 KiB description in four-byte characters, with room for the other fields.
    max_body_bytes: int = Field(default=512 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_json_depth: int = Field(default=16, ge=2, le=256)
    # Token bucket per API key: sustained rate and burst.
    rate_limit_per_minute: int = Field(default=600, ge=1)
    rate_limit_burst: int = Field(default=100, ge=1)
    # Requests that arrive together share one read of their API keys, and their accepts (those
    # without an Idempotency-Key) one transaction: at most this many each (1: each alone).
    batch_max: int = Field(default=64, ge=1, le=1000)
    # When the last of those reads or writes was less than this long ago (the intake is busy),
    # the next one waits this long for company; an idle intake reads and writes at once.
    batch_linger_ms: float = Field(default=2.0, ge=0, le=100)


SeverityName = Literal["critical", "moderate", "minimal"]


def _default_priorities() -> dict[str, SeverityName]:
    """Common PSA priority names (ConnectWise, Autotask, HaloPSA) → severity."""
    return {
        "1": "critical",
        "2": "moderate",
        "3": "minimal",
        "4": "minimal",
        "5": "minimal",
        "emergency": "critical",
        "critical": "critical",
        "urgent": "critical",
        "high": "moderate",
        "medium": "minimal",
        "normal": "minimal",
        "low": "minimal",
    }


def _default_impact_urgency() -> dict[str, SeverityName]:
    """ITIL-style ``impact:urgency`` (high/medium/low each) → severity."""
    return {
        "high:high": "critical",
        "high:medium": "moderate",
        "medium:high": "moderate",
        "high:low": "moderate",
        "low:high": "moderate",
        "medium:medium": "moderate",
        "medium:low": "minimal",
        "low:medium": "minimal",
        "low:low": "minimal",
    }


class PsaSettings(BaseSettings):
    """How a PSA's priority, or impact and urgency, become a severity when none is given."""

    model_config = SettingsConfigDict(env_prefix="PSA_", extra="ignore")

    # JSON. Keys are matched case-insensitively; "Priority 1 - Emergency Response", "P1" and
    # "1" all look up "1".
    priority_map: dict[str, SeverityName] = Field(default_factory=_default_priorities)
    impact_urgency_map: dict[str, SeverityName] = Field(default_factory=_default_impact_urgency)


class TracingSettings(BaseSettings):
    """OpenTelemetry. Trace context always flows (HTTP → Kafka headers → consumers) and trace ids
    are on every log line; spans are exported only when an OTLP endpoint is set."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    # OTLP over HTTP, e.g. http://otel-collector:4318 (the standard variable). Empty: no export.
    exporter_otlp_endpoint: str = ""
    # Share of new traces sampled (a caller's sampled flag is always followed).
    traces_sampler_arg: float = Field(default=1.0, ge=0, le=1)

    @property
    def exporting(self) -> bool:
        """Whether spans leave the process (and so are worth recording)."""
        return bool(self.exporter_otlp_endpoint)
