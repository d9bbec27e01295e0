"""Every settings class a service process needs, loaded once in ``main()``."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.settings import (
    ApiSettings,
    AppSettings,
    ClassifierSettings,
    ConsumerSettings,
    DatabaseSettings,
    GraphSettings,
    HttpSettings,
    KafkaSettings,
    MicrosoftRequestSettings,
    OutboxSettings,
    PartnerCenterSettings,
    PsaSettings,
    ReconcilerSettings,
    TracingSettings,
    WebhookSettings,
)


@dataclass(frozen=True)
class ServiceSettings:
    app: AppSettings = field(default_factory=AppSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    reconciler: ReconcilerSettings = field(default_factory=ReconcilerSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    graph: GraphSettings = field(default_factory=GraphSettings)
    microsoft: MicrosoftRequestSettings = field(default_factory=MicrosoftRequestSettings)
    partner_center: PartnerCenterSettings = field(default_factory=PartnerCenterSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    psa: PsaSettings = field(default_factory=PsaSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
