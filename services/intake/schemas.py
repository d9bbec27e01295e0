"""Request and response bodies of the intake API."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared.vocabulary import Audience, Category, IssueStatus, Outcome, Role, Severity, Vehicle

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_text(value: object) -> object:
    """Numbers are not timestamps here, whatever pydantic's lax mode would make of them."""
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    if isinstance(value, datetime):
        return value
    raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2026-11-21T09:00:00Z")


# An RFC 3339 date-time with a UTC offset.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class RequestBody(BaseModel):
    """What clients send: unknown fields are refused. Booleans and numbers are strict fields
    (``"yes"`` is not a boolean) and dates must be text (a number is not a date)."""

    model_config = ConfigDict(extra="forbid")


class Contact(RequestBody):
    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=40)


class IssueCreate(RequestBody):
    """A customer issue as a PSA tool sends it."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "external_ref": "CW-10442",
                    "tenant_id": "3f2b6a8e-52a1-4c1e-9a53-0d6a1b2c3d4e",
                    "title": "Outlook cannot connect to Exchange Online",
                    "description": "Since 09:10 no user can connect; OWA says unavailable.",
                    "service": "Exchange Online",
                    "region": "westeurope",
                    "severity": "critical",
                }
            ]
        },
    )

    external_ref: str = Field(min_length=1, max_length=128, description="The PSA ticket id.")
    customer_id: uuid.UUID | None = Field(default=None, description="A customer created here.")
    tenant_id: uuid.UUID | None = Field(default=None, description="The customer's Entra tenant.")
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=65_536)
    service: str = Field(min_length=1, max_length=128, examples=["Microsoft Teams"])
    region: str | None = Field(default=None, max_length=64)
    category: Category | None = Field(
        default=None,
        description="Absent: from `psa_type` when the partner's profile maps it, else inferred "
        "from the text.",
    )
    psa_type: str | None = Field(
        default=None,
        max_length=200,
        description="The PSA's own ticket type as it names it (a board, type and subtype, an "
        "issue type): the partner profile's `psa_types` maps it to a category, in any case.",
        examples=["Email / Mail flow", "Billing > Invoice question"],
    )
    severity: Severity | None = Field(
        default=None,
        description="Microsoft's severity. Absent: from `priority`, else from `impact` and "
        "`urgency` (tables PSA_PRIORITY_MAP, PSA_IMPACT_URGENCY_MAP), else moderate.",
    )
    priority: str | None = Field(
        default=None,
        max_length=100,
        description="The PSA's priority as it names it.",
        examples=["Priority 1 - Emergency Response", "High", "P2"],
    )
    impact: str | None = Field(default=None, max_length=50, examples=["High"])
    urgency: str | None = Field(default=None, max_length=50, examples=["Medium"])
    contact: Contact | None = None
    locale: str | None = Field(default=None, pattern=r"^(en|es|de|fr)(-[A-Z]{2})?$")

    @model_validator(mode="after")
    def _no_nul(self) -> IssueCreate:
        for name in ("external_ref", "title", "description", "service", "region", "psa_type"):
            value = getattr(self, name)
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"{name} must not contain NUL characters")
        return self


class IssueAccepted(BaseModel):
    id: uuid.UUID
    status: IssueStatus
    external_ref: str
    duplicate: bool = Field(default=False, description="True when the PSA ticket was sent before.")


class ClassificationView(BaseModel):
    category: Category | None
    category_source: str
    outcome: Outcome
    vehicle: Vehicle | None
    partner_role: Role | None
    reasons: list[str]
    rule_id: str
    health_incident_id: str | None
    cluster_id: str | None
    language: str | None
    confidence: float


class DeliveryView(BaseModel):
    id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None


class RoutingView(BaseModel):
    microsoft_request_id: uuid.UUID | None
    provider: dict[str, Any] | None
    handoff_id: uuid.UUID | None = Field(
        default=None, description="The indirect-provider hand-off, for indirect resellers."
    )
    webhook_deliveries: list[DeliveryView]


class TimelineEntry(BaseModel):
    status: IssueStatus
    at: datetime
    detail: str


class IssueSummary(BaseModel):
    """An issue in a list: what it is and where it went, without its timeline."""

    id: uuid.UUID
    external_ref: str
    status: IssueStatus
    title: str
    service: str
    region: str | None
    severity: Severity
    category: Category | None = Field(description="Given, or inferred once classified.")
    outcome: Outcome | None = Field(description="Once classified.")
    vehicle: Vehicle | None
    customer_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class IssuePage(BaseModel):
    items: list[IssueSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class IssuePatch(RequestBody):
    """What a PSA tells us about the ticket afterwards."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "resolved", "note": "Fixed by the customer."},
                {"category": "service_unavailable", "note": "Nobody can open Teams since 9:00."},
            ]
        },
    )

    status: IssueStatus | None = Field(
        default=None,
        description="`resolved` or `closed`; other moves belong to the service. Illegal moves "
        "answer 409 naming the allowed ones.",
    )
    category: Category | None = Field(
        default=None,
        description="For an issue routed without a Microsoft request or provider hand-off "
        "(`needs_information`, `partner_resolves`, `linked_to_incident`): the issue goes back "
        "to `received` with this category and is classified and routed again. Any other issue "
        "answers 409; a role bound to a category gives only its own (403).",
    )
    description: str | None = Field(
        default=None,
        min_length=1,
        max_length=65_536,
        description="The ticket's text as the PSA has it now, for the same issues as "
        "`category`: it replaces the description, and the issue is classified again from it "
        "(and from `category`, when given).",
    )
    psa_type: Annotated[str, StringConstraints(strip_whitespace=True)] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The ticket type the PSA has now, for the same issues as `category`: the "
        "issue is classified again with it (the profile's `psa_types` may map it).",
    )
    note: str | None = Field(default=None, min_length=1, max_length=10_000)

    @property
    def reclassifies(self) -> bool:
        """Whether this update puts the issue back to be classified again."""
        return any(v is not None for v in (self.category, self.description, self.psa_type))

    @model_validator(mode="after")
    def _something(self) -> IssuePatch:
        if self.status is None and self.note is None and not self.reclassifies:
            raise ValueError("give a status, a category, a description, a psa_type or a note")
        if self.status is not None and self.reclassifies:
            raise ValueError(
                "a category, description or psa_type has the issue classified again: give it "
                "without a status"
            )
        if self.status is not None and self.status not in (
            IssueStatus.RESOLVED,
            IssueStatus.CLOSED,
        ):
            raise ValueError("a PSA may set status to resolved or closed")
        for name in ("note", "description", "psa_type"):
            if "\x00" in (getattr(self, name) or ""):
                raise ValueError(f"{name} must not contain NUL characters")
        return self


class IssueView(BaseModel):
    id: uuid.UUID
    external_ref: str
    status: IssueStatus
    title: str
    description: str
    service: str
    region: str | None
    severity: Severity
    category: Category | None
    psa_type: str | None = Field(description="The PSA's own ticket type, as it was sent.")
    customer_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    classification: ClassificationView | None
    routing: RoutingView | None
    timeline: list[TimelineEntry]


class WebhookCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    event_types: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Empty: every event type of the audience.",
        examples=[["issue.escalated_to_microsoft", "microsoft_request.updated"]],
    )
    description: str = Field(default="", max_length=500)
    audience: Audience = Field(
        default=Audience.PARTNER,
        description="`partner`: your own endpoint, for issue outcomes and Microsoft request "
        "updates. `indirect_provider` (indirect resellers only): your provider's endpoint, "
        "which receives `provider_handoff.created` and nothing else; give the secret to your "
        "provider.",
    )


class WebhookView(BaseModel):
    id: uuid.UUID
    url: str
    audience: Audience
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime


class WebhookEnabled(WebhookView):
    requeued: int = Field(
        description="Deliveries the disabling had stopped (the one answered 410 and those not "
        "sent since), pending again."
    )


class WebhookCreated(WebhookView):
    secret: str = Field(description="The signing secret (`whsec_…`). Shown only in this answer.")


class HealthIncidentPut(RequestBody):
    """A service-health issue in Microsoft Graph's ``serviceHealthIssue`` shape."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    title: str = Field(max_length=500)
    service: str = Field(max_length=128)
    feature: str | None = Field(default=None, max_length=128)
    classification: str = Field(default="incident", pattern=r"(?i)^(incident|advisory)$")
    status: str = Field(default="serviceDegradation", max_length=48)
    is_resolved: bool = Field(default=False, alias="isResolved", strict=True)
    start_at: Timestamp | None = Field(default=None, alias="startDateTime")
    end_at: Timestamp | None = Field(default=None, alias="endDateTime")
    impact_description: str = Field(default="", alias="impactDescription", max_length=10_000)
    regions: list[str] = Field(default_factory=list, max_length=100)
    tenant_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class HealthIncidentView(BaseModel):
    id: str
    title: str
    service: str
    feature: str | None
    classification: str
    status: str
    is_resolved: bool
    start_at: datetime | None
    end_at: datetime | None
    impact_description: str
    regions: list[str]
    updated_at: datetime


class SecretRotated(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="The new signing secret. Shown only in this answer.")
    previous_secret_expires_at: datetime = Field(
        description="Until then every message is signed with the old and the new secret."
    )


class AttemptView(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


class DeliveryDetail(BaseModel):
    id: str = Field(description="The `webhook-id` header of every attempt of this delivery.")
    event_type: str
    issue_id: uuid.UUID | None
    status: str = Field(description="pending, succeeded, failed or exhausted")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptView]


class RedeliverMany(RequestBody):
    """Which kept deliveries of one endpoint to send again, oldest first."""

    status: Literal["exhausted", "failed"] = Field(
        default="exhausted",
        description="`exhausted`: every retry failed (the receiver was down for long); "
        "`failed`: refused at once (a 4xx) or stopped by a disabled endpoint.",
    )
    created_after: Timestamp | None = Field(
        default=None, description="Only deliveries created after this (RFC 3339 with an offset)."
    )
    limit: int = Field(default=1000, ge=1, le=10_000, strict=True)


class Requeued(BaseModel):
    requeued: int = Field(
        description="Deliveries pending again, each under its own `webhook-id`; fewer than "
        "`limit` means none is left to send again."
    )


class DeliveryPage(BaseModel):
    items: list[DeliveryDetail]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class MicrosoftRequestView(BaseModel):
    """A request to file with Microsoft, in Partner Center's ServiceRequest shape."""

    id: uuid.UUID
    microsoft_id: str | None = Field(description="Microsoft's request number, once filed.")
    status: str = Field(description="none, open, closed or attention_needed")
    severity: str
    vehicle: str
    title: str
    description: str
    support_topic_id: str | None
    primary_contact: dict[str, Any]
    notes: list[dict[str, Any]]
    issue_ids: list[str]
    cluster_id: str | None
    agent_locale: str
    partner_center_payload: dict[str, Any] = Field(
        description="The exact body for POST /v1/servicerequests/{agent_locale}."
    )
    superseded_by_id: uuid.UUID | None
    filed_at: datetime | None
    first_response_due_at: datetime | None
    first_response_at: datetime | None
    overdue: bool = Field(description="Filed, unanswered, and past Microsoft's target.")
    submission: str = Field(
        description="Partner Center connector: manual (a person files it), queued, submitted, "
        "or failed (the connector gave up; file it by hand)."
    )
    submission_error: str | None = Field(
        description="Why the connector does not file it, or its last error."
    )
    created_at: datetime
    updated_at: datetime


class MicrosoftRequestPage(BaseModel):
    items: list[MicrosoftRequestView]
    next_cursor: str | None


class MicrosoftRequestPatch(RequestBody):
    """What a person who filed the request by hand records."""

    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(
        default=None, description="none/open/closed/attention_needed, any case", examples=["Open"]
    )
    microsoft_id: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=10_000)
    responded: bool = Field(
        strict=True,
        default=False,
        description="Microsoft has responded (stops the first-response clock).",
    )
