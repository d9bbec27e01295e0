"""Microsoft request records in Partner Center's ServiceRequest shape."""

from __future__ import annotations

import uuid
from typing import Any

from shared.db.models import Issue, Partner
from shared.events.models import IssueClassified

TITLE_MAX = 255
AGENT_LOCALE_BY_LANGUAGE = {"en": "en-US", "es": "es-ES", "de": "de-DE", "fr": "fr-FR"}


def dedupe_key(issue_id: uuid.UUID, cluster_id: str | None) -> str:
    """One request per correlated cluster, otherwise one per issue."""
    return f"cluster:{cluster_id}" if cluster_id else f"issue:{issue_id}"


def build_title(issue: Issue, *, clustered: bool = False) -> str:
    scope = f" outage across customer tenants in {issue.region}:" if clustered else ""
    title = f"[{issue.service}]{scope} {issue.title}"
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


def build_description(issue: Issue, event: IssueClassified) -> str:
    lines = [
        issue.description.strip() or issue.title,
        "",
        f"Service: {issue.service}",
        f"Region: {issue.region or 'not given'}",
        f"Customer tenant: {issue.tenant_id or 'not given'}",
        f"Category: {event.category.value if event.category else 'unknown'}",
        f"Partner ticket: {issue.external_ref}",
        "Why escalated: " + "; ".join(event.reasons),
    ]
    return "\n".join(lines)


def primary_contact(issue: Issue) -> dict[str, Any]:
    contact = issue.contact or {}
    return {
        key: value
        for key, value in {
            "FirstName": contact.get("first_name"),
            "LastName": contact.get("last_name"),
            "Email": contact.get("email"),
            "PhoneNumber": contact.get("phone"),
        }.items()
        if value
    }


def partner_center_payload(
    *,
    title: str,
    description: str,
    severity: str,
    support_topic_id: str | None,
    contact: dict[str, Any],
) -> dict[str, Any]:
    """The exact body for ``POST /v1/servicerequests/{agent-locale}``."""
    body: dict[str, Any] = {
        "Title": title,
        "Description": description,
        "Severity": severity,
        "SupportTopicId": support_topic_id,
    }
    if contact:
        body["PrimaryContact"] = contact
    return body


def agent_locale(partner: Partner) -> str:
    return AGENT_LOCALE_BY_LANGUAGE.get(partner.locale[:2].lower(), "en-US")
