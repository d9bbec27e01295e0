"""The seed escalation rules, in the order the CSP support model applies them.

Pure: facts in, one decision out. Rule ids are stable; they are stored with every decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.classifier.facts import Decision, IncidentFacts, Inference, IssueFacts, PartnerFacts
from services.classifier.inference import fold, infer
from shared.vocabulary import (
    MICROSOFT_TECHNICAL_CATEGORIES,
    TECHNICAL_VEHICLE_PREFERENCE,
    Category,
    CspModel,
    Outcome,
    Role,
    Vehicle,
)

PARTNER_ROLE_BY_CATEGORY = {
    Category.CONFIGURATION: Role.ADMIN_AGENT,
    Category.HOW_TO: Role.HELPDESK_AGENT,
    Category.BILLING: Role.BILLING_ADMIN,
    Category.SUBSCRIPTION: Role.SALES_AGENT,
}


def matching_incident(
    issue: IssueFacts, incidents: Sequence[IncidentFacts]
) -> IncidentFacts | None:
    """The first active incident or advisory that covers the issue's service, region and tenant."""
    service = fold(issue.service)
    for incident in incidents:
        if incident.is_resolved or fold(incident.service) != service:
            continue
        if (
            incident.regions
            and issue.region
            and fold(issue.region) not in {fold(r) for r in incident.regions}
        ):
            continue
        if incident.tenant_ids and issue.tenant_id not in incident.tenant_ids:
            continue
        return incident
    return None


def technical_vehicle(partner: PartnerFacts) -> Vehicle | None:
    return next((v for v in TECHNICAL_VEHICLE_PREFERENCE if v in partner.support_vehicles), None)


def decide(
    issue: IssueFacts, partner: PartnerFacts, incidents: Sequence[IncidentFacts] = ()
) -> Decision:
    """Apply the seed rules; exactly one decision for any input."""
    inference = infer(issue.title, issue.description)
    category, source = (
        (issue.category, "given") if issue.category else (inference.category, "inferred")
    )
    evidence = _evidence(inference) if source == "inferred" else ()

    def verdict(outcome: Outcome, rule_id: str, reason: str, **extra: Any) -> Decision:
        return Decision(
            outcome=outcome,
            rule_id=rule_id,
            reasons=(reason, *evidence),
            category=category,
            category_source=source,
            language=inference.language,
            confidence=1.0 if source == "given" else inference.confidence,
            **extra,
        )

    incident = matching_incident(issue, incidents)
    if incident is not None:
        title = f": {incident.title}" if incident.title else ""
        return verdict(
            Outcome.LINKED_TO_INCIDENT,
            "service-health-first",
            f"Active {incident.classification} {incident.id} covers {issue.service}{title}",
            health_incident_id=incident.id,
        )
    if category is None:
        return verdict(
            Outcome.NEEDS_INFORMATION,
            "category-unclear",
            "The text does not say what kind of problem this is: is something unavailable or "
            "failing, or is it a settings, billing or subscription question?",
        )
    if category in PARTNER_ROLE_BY_CATEGORY:
        role = PARTNER_ROLE_BY_CATEGORY[category]
        return verdict(
            Outcome.PARTNER_RESOLVES,
            f"partner-owns-{category.value}",
            f"{category.value} issues are the partner's to resolve ({role.value})",
            partner_role=role,
        )
    if partner.csp_model is CspModel.INDIRECT_RESELLER:
        return verdict(
            Outcome.ROUTED_TO_INDIRECT_PROVIDER,
            "indirect-reseller-handoff",
            f"{category.value} needs Microsoft; an indirect reseller hands it to its indirect "
            "provider",
        )
    if category is Category.COMMERCIAL:
        return verdict(
            Outcome.ESCALATED_TO_MICROSOFT,
            "commercial-support",
            "Commercial problems go to Microsoft commercial support",
            vehicle=Vehicle.COMMERCIAL_SUPPORT,
        )
    assert category in MICROSOFT_TECHNICAL_CATEGORIES
    vehicle = technical_vehicle(partner)
    if vehicle is None:
        return verdict(
            Outcome.PARTNER_RESOLVES,
            "no-technical-vehicle",
            f"{category.value} needs Microsoft, but the partner has no technical support plan "
            "(Premier, Advanced or Partner cloud support) to escalate through",
            partner_role=Role.ADMIN_AGENT,
            tags=("no_technical_vehicle",),
        )
    return verdict(
        Outcome.ESCALATED_TO_MICROSOFT,
        "technical-escalation",
        f"{category.value} is Microsoft's to fix; escalate through {vehicle.value}",
        vehicle=vehicle,
    )


def _evidence(inference: Inference) -> tuple[str, ...]:
    if not inference.evidence:
        return ()
    return ("Category inferred from: " + ", ".join(repr(t) for t in inference.evidence),)
