"""The words of the external contract: categories, outcomes, vehicles, roles, statuses."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    CONFIGURATION = "configuration"
    BILLING = "billing"
    SUBSCRIPTION = "subscription"
    HOW_TO = "how_to"
    UNDOCUMENTED_BEHAVIOR = "undocumented_behavior"
    SERVICE_UNAVAILABLE = "service_unavailable"
    BUG = "bug"
    NETWORK_OUTAGE = "network_outage"
    REGIONAL_MULTITENANT = "regional_multitenant"
    COMMERCIAL = "commercial"


def known_category(value: str) -> Category | None:
    """``value`` as a category; ``None`` when it names none (a stored value the API did not
    check, or one a later release dropped)."""
    return Category(value) if value in _CATEGORY_VALUES else None


_CATEGORY_VALUES = frozenset(Category)

PARTNER_CATEGORIES = frozenset(
    {Category.CONFIGURATION, Category.BILLING, Category.SUBSCRIPTION, Category.HOW_TO}
)
MICROSOFT_TECHNICAL_CATEGORIES = frozenset(
    {
        Category.UNDOCUMENTED_BEHAVIOR,
        Category.SERVICE_UNAVAILABLE,
        Category.BUG,
        Category.NETWORK_OUTAGE,
        Category.REGIONAL_MULTITENANT,
    }
)


class Outcome(StrEnum):
    LINKED_TO_INCIDENT = "linked_to_incident"
    PARTNER_RESOLVES = "partner_resolves"
    ESCALATED_TO_MICROSOFT = "escalated_to_microsoft"
    ROUTED_TO_INDIRECT_PROVIDER = "routed_to_indirect_provider"
    NEEDS_INFORMATION = "needs_information"


class Vehicle(StrEnum):
    COMMERCIAL_SUPPORT = "commercial_support"
    PREMIER_SUPPORT_FOR_PARTNERS = "premier_support_for_partners"
    ADVANCED_SUPPORT_FOR_PARTNERS = "advanced_support_for_partners"
    PARTNER_CLOUD_SUPPORT = "partner_cloud_support"


# The order in which a technical hand-off picks the partner's contracted plan.
TECHNICAL_VEHICLE_PREFERENCE = (
    Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
    Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,
    Vehicle.PARTNER_CLOUD_SUPPORT,
)


class Severity(StrEnum):
    CRITICAL = "critical"
    MODERATE = "moderate"
    MINIMAL = "minimal"


class Role(StrEnum):
    ADMIN_AGENT = "admin_agent"
    HELPDESK_AGENT = "helpdesk_agent"
    BILLING_ADMIN = "billing_admin"
    SALES_AGENT = "sales_agent"
    READER = "reader"


class CspModel(StrEnum):
    DIRECT_BILL = "direct_bill"
    INDIRECT_RESELLER = "indirect_reseller"


class IssueStatus(StrEnum):
    RECEIVED = "received"
    CLASSIFIED = "classified"
    ROUTED = "routed"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Locale(StrEnum):
    EN = "en"
    ES = "es"
    DE = "de"
    FR = "fr"


WEBHOOK_EVENT_BY_OUTCOME = {
    Outcome.LINKED_TO_INCIDENT: "issue.linked_to_incident",
    Outcome.PARTNER_RESOLVES: "issue.partner_action_required",
    Outcome.ESCALATED_TO_MICROSOFT: "issue.escalated_to_microsoft",
    Outcome.ROUTED_TO_INDIRECT_PROVIDER: "issue.routed_to_provider",
    Outcome.NEEDS_INFORMATION: "issue.needs_information",
}
WEBHOOK_EVENT_TYPES = (*WEBHOOK_EVENT_BY_OUTCOME.values(), "microsoft_request.updated")
# What an indirect reseller's provider endpoint receives, and nothing else.
PROVIDER_HANDOFF_EVENT = "provider_handoff.created"
# How a delivery's last_error begins when it was due to an endpoint already disabled.
WEBHOOK_NOT_SENT = "not sent: "


class Audience(StrEnum):
    """Who owns a webhook endpoint: the partner itself, or its indirect provider."""

    PARTNER = "partner"
    INDIRECT_PROVIDER = "indirect_provider"
