"""Event payloads (CloudEvents ``data``), one pydantic model per type and schema version.

Events are facts in the past tense. A model's ``TYPE`` is the CloudEvents ``type`` and its
``VERSION`` goes into ``dataschema``; a breaking change gets a new model with a new version.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.vocabulary import Category, IssueStatus, Outcome, Role, Severity, Vehicle


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    TOPIC: ClassVar[str]

    def key(self) -> str:
        """The Kafka message key (and CloudEvents ``subject``)."""
        raise NotImplementedError


class IssueEvent(Event):
    issue_id: uuid.UUID
    partner_id: uuid.UUID

    def key(self) -> str:
        return str(self.issue_id)


class IssueReceived(IssueEvent):
    """The intake accepted a customer issue from a PSA tool (or the API)."""

    TYPE = "csp.issue.received"
    VERSION = 1
    TOPIC = "issues.received"

    customer_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = None
    external_ref: str
    title: str
    description: str
    service: str
    region: str | None = None
    category: Category | None = None
    psa_type: str | None = Field(default=None, description="The PSA's own ticket type.")
    severity: Severity
    locale: str | None = None
    contact: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime


class IssueClassified(IssueEvent):
    """The classifier decided what happens to an issue: the outcome, the vehicle and why."""

    TYPE = "csp.issue.classified"
    VERSION = 1
    TOPIC = "issues.classified"

    external_ref: str
    category: Category | None
    category_source: str
    outcome: Outcome
    vehicle: Vehicle | None = None
    partner_role: Role | None = None
    reasons: list[str]
    rule_id: str
    health_incident_id: str | None = None
    cluster_id: str | None = None
    language: str | None = None
    confidence: float = Field(ge=0.0, le=1.0, description="How sure the category is, 0 to 1.")
    tags: list[str] = Field(default_factory=list)
    severity: Severity
    service: str
    region: str | None = None
    classified_at: datetime


class IssueRouted(IssueEvent):
    """The notifier carried the outcome out: webhooks queued, Microsoft record or hand-off made."""

    TYPE = "csp.issue.routed"
    VERSION = 1
    TOPIC = "issues.routed"

    external_ref: str
    outcome: Outcome
    vehicle: Vehicle | None = None
    microsoft_request_id: uuid.UUID | None = None
    provider_handoff_id: uuid.UUID | None = None
    webhook_delivery_ids: list[str] = Field(default_factory=list)
    routed_at: datetime


class IssueUpdated(IssueEvent):
    """An issue changed status or gained a note (PSA update, lifecycle step, cluster link)."""

    TYPE = "csp.issue.updated"
    VERSION = 1
    TOPIC = "issues.updated"

    status: IssueStatus
    note: str | None = None
    updated_at: datetime


class HealthIncidentChanged(Event):
    """A service-health incident or advisory was recorded or changed."""

    TYPE = "csp.health.incident_changed"
    VERSION = 1
    TOPIC = "health.incidents"

    # The Kafka key and CloudEvents subject, so never empty; stored in a 64-character column.
    incident_id: str = Field(min_length=1, max_length=64)
    # Set when one partner recorded it through the API; absent: it applies to every partner.
    partner_id: uuid.UUID | None = None
    title: str
    service: str
    feature: str | None = None
    classification: str
    status: str
    is_resolved: bool
    start_at: datetime | None = None
    end_at: datetime | None = None
    impact_description: str = ""
    regions: list[str] = Field(default_factory=list)
    tenant_ids: list[uuid.UUID] = Field(default_factory=list)

    def key(self) -> str:
        return self.incident_id


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (IssueReceived, IssueClassified, IssueRouted, IssueUpdated, HealthIncidentChanged)
}
TOPICS = tuple(cls.TOPIC for cls in EVENT_TYPES.values())
