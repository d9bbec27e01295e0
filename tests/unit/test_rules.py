"""The seed rules, table-driven: facts in, one decision out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time

import pytest

from services.classifier.engine import decide as engine_decide
from services.classifier.facts import (
    ClusterFacts,
    Decision,
    HealthView,
    IncidentFacts,
    IssueFacts,
    PartnerFacts,
    SupportHours,
)
from shared.rules.loader import load_rules
from shared.vocabulary import Category, CspModel, Outcome, Role, Severity, Vehicle

ALL_TECH = frozenset(
    {
        Vehicle.PARTNER_CLOUD_SUPPORT,
        Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,
        Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
    }
)
DIRECT = PartnerFacts(support_vehicles=ALL_TECH)
INDIRECT = PartnerFacts(csp_model=CspModel.INDIRECT_RESELLER, support_vehicles=ALL_TECH)
NO_PLAN = PartnerFacts()
RULES = load_rules()
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday


def decide(
    issue: IssueFacts,
    partner: PartnerFacts,
    incidents: list[IncidentFacts] | None = None,
    *,
    cluster: ClusterFacts | None = None,
) -> Decision:
    return engine_decide(
        RULES, issue, partner, health=HealthView(tuple(incidents or ())), cluster=cluster, now=NOON
    )


def issue(category: Category | None = None, **kw: object) -> IssueFacts:
    fields: dict[str, object] = {
        "title": "Problem",
        "description": "",
        "service": "Exchange Online",
        "severity": Severity.MODERATE,
        "category": category,
    }
    fields.update(kw)
    return IssueFacts(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("category", "partner", "outcome", "vehicle", "role"),
    [
        (Category.CONFIGURATION, DIRECT, Outcome.PARTNER_RESOLVES, None, Role.ADMIN_AGENT),
        (Category.HOW_TO, DIRECT, Outcome.PARTNER_RESOLVES, None, Role.HELPDESK_AGENT),
        (Category.BILLING, DIRECT, Outcome.PARTNER_RESOLVES, None, Role.BILLING_ADMIN),
        (Category.SUBSCRIPTION, DIRECT, Outcome.PARTNER_RESOLVES, None, Role.SALES_AGENT),
        (Category.BILLING, INDIRECT, Outcome.PARTNER_RESOLVES, None, Role.BILLING_ADMIN),
        (
            Category.SERVICE_UNAVAILABLE,
            DIRECT,
            Outcome.ESCALATED_TO_MICROSOFT,
            Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
            None,
        ),
        (
            Category.BUG,
            DIRECT,
            Outcome.ESCALATED_TO_MICROSOFT,
            Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
            None,
        ),
        (
            Category.UNDOCUMENTED_BEHAVIOR,
            DIRECT,
            Outcome.ESCALATED_TO_MICROSOFT,
            Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
            None,
        ),
        (
            Category.NETWORK_OUTAGE,
            DIRECT,
            Outcome.ESCALATED_TO_MICROSOFT,
            Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
            None,
        ),
        (
            Category.REGIONAL_MULTITENANT,
            DIRECT,
            Outcome.ESCALATED_TO_MICROSOFT,
            Vehicle.PREMIER_SUPPORT_FOR_PARTNERS,
            None,
        ),
        (
            Category.COMMERCIAL,
            NO_PLAN,
            Outcome.ESCALATED_TO_MICROSOFT,
            Vehicle.COMMERCIAL_SUPPORT,
            None,
        ),
        (Category.BUG, INDIRECT, Outcome.ROUTED_TO_INDIRECT_PROVIDER, None, None),
        (Category.COMMERCIAL, INDIRECT, Outcome.ROUTED_TO_INDIRECT_PROVIDER, None, None),
        (Category.BUG, NO_PLAN, Outcome.PARTNER_RESOLVES, None, Role.ADMIN_AGENT),
    ],
)
def test_each_category_gets_the_outcome_the_csp_support_model_prescribes(
    category: Category,
    partner: PartnerFacts,
    outcome: Outcome,
    vehicle: Vehicle | None,
    role: Role | None,
) -> None:
    decision = decide(issue(category), partner)
    assert (decision.outcome, decision.vehicle, decision.partner_role) == (outcome, vehicle, role)
    assert decision.category_source == "given"
    assert decision.reasons


@pytest.mark.parametrize(
    ("vehicles", "expected"),
    [
        ({Vehicle.PARTNER_CLOUD_SUPPORT}, Vehicle.PARTNER_CLOUD_SUPPORT),
        (
            {Vehicle.PARTNER_CLOUD_SUPPORT, Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS},
            Vehicle.ADVANCED_SUPPORT_FOR_PARTNERS,
        ),
        (ALL_TECH, Vehicle.PREMIER_SUPPORT_FOR_PARTNERS),
    ],
)
def test_a_technical_escalation_uses_the_best_contracted_plan(
    vehicles: set[Vehicle], expected: Vehicle
) -> None:
    decision = decide(issue(Category.BUG), PartnerFacts(support_vehicles=frozenset(vehicles)))
    assert decision.vehicle is expected


def test_without_a_technical_plan_the_decision_says_so_instead_of_inventing_one() -> None:
    decision = decide(issue(Category.SERVICE_UNAVAILABLE), NO_PLAN)
    assert decision.vehicle is None
    assert "no_technical_vehicle" in decision.tags
    assert "no technical support plan" in decision.reasons[0]
    assert decision.rule_id == "no-technical-vehicle"


def test_an_active_incident_for_the_service_wins_over_escalation() -> None:
    incident = IncidentFacts(id="EX1", service="exchange online", title="Mail delays")
    decision = decide(issue(Category.SERVICE_UNAVAILABLE), DIRECT, [incident])
    assert decision.outcome is Outcome.LINKED_TO_INCIDENT
    assert decision.health_incident_id == "EX1"


@pytest.mark.parametrize(
    "incident",
    [
        IncidentFacts(id="R", service="Exchange Online", is_resolved=True),
        IncidentFacts(id="S", service="Microsoft Teams"),
        IncidentFacts(id="G", service="Exchange Online", regions=("eastus",)),
        IncidentFacts(id="T", service="Exchange Online", tenant_ids=(uuid.uuid4(),)),
    ],
)
def test_resolved_or_out_of_scope_incidents_do_not_match(incident: IncidentFacts) -> None:
    decision = decide(
        issue(Category.BUG, region="westeurope", tenant_id=uuid.uuid4()), DIRECT, [incident]
    )
    assert decision.outcome is Outcome.ESCALATED_TO_MICROSOFT


def test_unclear_text_asks_for_information_rather_than_guessing() -> None:
    decision = decide(issue(None, title="Hallo", description="Bitte zurückrufen"), DIRECT)
    assert decision.outcome is Outcome.NEEDS_INFORMATION
    assert decision.category is None


def test_reasons_are_written_in_the_partners_language() -> None:
    spanish = PartnerFacts(support_vehicles=ALL_TECH, locale="es")
    decision = decide(issue(Category.BILLING), spanish)
    assert decision.reasons[0] == "El partner es responsable de la facturación de sus clientes"


def test_an_inferred_category_keeps_its_evidence_in_the_reasons() -> None:
    decision = decide(issue(None, title="Die Rechnung ist falsch"), DIRECT)
    assert decision.category is Category.BILLING
    assert decision.category_source == "inferred"
    assert any("'rechnung'" in reason for reason in decision.reasons)


def test_unavailable_health_is_said_and_does_not_suppress_the_escalation() -> None:
    decision = engine_decide(
        RULES,
        issue(Category.SERVICE_UNAVAILABLE),
        DIRECT,
        health=HealthView(available=False, note="Graph timed out"),
        now=NOON,
    )
    assert decision.outcome is Outcome.ESCALATED_TO_MICROSOFT
    assert any("Graph timed out" in reason for reason in decision.reasons)


def test_a_cluster_member_is_a_regional_multitenant_escalation_with_its_size() -> None:
    decision = decide(
        issue(Category.SERVICE_UNAVAILABLE, region="westeurope"),
        DIRECT,
        cluster=ClusterFacts(id="c1", size=4),
    )
    assert (decision.category, decision.cluster_id) == (Category.REGIONAL_MULTITENANT, "c1")
    assert decision.outcome is Outcome.ESCALATED_TO_MICROSOFT
    assert "outage_cluster" in decision.tags
    assert decision.reasons[0].startswith("4 customer tenants report failures")


def test_outside_the_partners_support_hours_the_decision_is_tagged() -> None:
    hours = SupportHours(
        timezone="Europe/Berlin", days=frozenset(range(5)), start=time(8), end=time(18)
    )
    staffed = PartnerFacts(support_vehicles=ALL_TECH, support_hours=hours)
    at_noon = decide(issue(Category.BUG), staffed)
    at_night = engine_decide(
        RULES, issue(Category.BUG), staffed, now=datetime(2026, 11, 18, 22, 0, tzinfo=UTC)
    )
    assert "outside_support_hours" not in at_noon.tags
    assert "outside_support_hours" in at_night.tags
    assert at_night.matched_rules == ("tag-outside-support-hours", "technical-escalation")


def test_every_condition_of_the_schema_has_a_check() -> None:
    from services.classifier.engine import CHECKS
    from shared.rules.schema import When

    assert set(CHECKS) == set(When.model_fields)


TYPED = PartnerFacts(
    support_vehicles=ALL_TECH,
    psa_types={"Email / Mail flow": "configuration", "Service outage": "service_unavailable"},
)


def test_the_psa_ticket_type_the_partner_maps_decides_the_category_in_any_case() -> None:
    decision = decide(
        issue(title="Exchange is down for everyone", psa_type="  email / MAIL FLOW "), TYPED
    )
    assert (decision.category, decision.category_source) == (Category.CONFIGURATION, "psa_type")
    assert decision.outcome is Outcome.PARTNER_RESOLVES
    assert "Category from the PSA ticket type '  email / MAIL FLOW '" in decision.reasons
    assert decision.confidence == 1.0


def test_a_given_category_outranks_the_ticket_type_and_an_unmapped_type_leaves_the_text() -> None:
    given = decide(issue(Category.BILLING, psa_type="Service outage"), TYPED)
    assert (given.category, given.category_source) == (Category.BILLING, "given")
    unmapped = decide(issue(title="Exchange is down", psa_type="Other"), TYPED)
    assert (unmapped.category, unmapped.category_source) == (
        Category.SERVICE_UNAVAILABLE,
        "inferred",
    )
    stale = PartnerFacts(psa_types={"Other": "no_such_category"})
    assert decide(issue(title="Exchange is down", psa_type="Other"), stale).category_source == (
        "inferred"
    )
