"""All tables; importing this package registers every model on ``Base.metadata``."""

from shared.db.models.correlation import ClusterSignal, CorrelationKey, OutageCluster
from shared.db.models.health import HealthIncident
from shared.db.models.issues import Classification, Customer, Issue, IssueEvent
from shared.db.models.messaging import (
    IdempotencyRecord,
    InboxRecord,
    OutboxMessage,
    OutboxPending,
)
from shared.db.models.partners import ApiKey, Partner
from shared.db.models.routing import MicrosoftRequest, MicrosoftRequestIssue, ProviderHandoff
from shared.db.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookSubscription

__all__ = [
    "ApiKey",
    "Classification",
    "ClusterSignal",
    "CorrelationKey",
    "Customer",
    "HealthIncident",
    "IdempotencyRecord",
    "InboxRecord",
    "Issue",
    "IssueEvent",
    "MicrosoftRequest",
    "MicrosoftRequestIssue",
    "OutageCluster",
    "OutboxMessage",
    "OutboxPending",
    "Partner",
    "ProviderHandoff",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
]
