"""Properties of the default rules over any issue (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.classifier.engine import decide
from services.classifier.facts import HealthView, IncidentFacts, IssueFacts, PartnerFacts
from shared.rules.loader import load_rules
from shared.vocabulary import PARTNER_CATEGORIES, Category, CspModel, Outcome, Severity, Vehicle

RULES = load_rules()
SERVICES = ("Exchange Online", "Microsoft Teams", "SharePoint Online", "Azure Virtual Machines")
WORDS = ("down", "factura", "Rechnung", "indisponible", "error", "licence", "hello", "")

issues = st.builds(
    IssueFacts,
    title=st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join),
    description=st.text(max_size=80),
    service=st.sampled_from(SERVICES),
    severity=st.sampled_from(Severity),
    category=st.none() | st.sampled_from(Category),
    region=st.none() | st.sampled_from(("westeurope", "eastus")),
)
partners = st.builds(
    PartnerFacts,
    csp_model=st.sampled_from(CspModel),
    support_vehicles=st.frozensets(st.sampled_from(Vehicle)),
    locale=st.sampled_from(("en", "es", "de", "fr")),
)
incidents = st.lists(
    st.builds(
        IncidentFacts,
        id=st.just("EX1"),
        service=st.sampled_from(SERVICES),
        is_resolved=st.booleans(),
    ),
    max_size=3,
)
NOW = datetime(2026, 11, 18, 12, tzinfo=UTC)


@given(issues, partners, incidents)
def test_any_issue_gets_exactly_one_explained_decision(issue, partner, known) -> None:  # type: ignore[no-untyped-def]
    decision = decide(RULES, issue, partner, health=HealthView(tuple(known)), now=NOW)
    assert decision.outcome in Outcome
    assert decision.rule_id
    assert decision.reasons


@given(issues, partners)
def test_a_category_the_partner_must_handle_is_never_escalated(issue, partner) -> None:  # type: ignore[no-untyped-def]
    decision = decide(RULES, issue, partner, now=NOW)
    if decision.category in PARTNER_CATEGORIES:
        assert decision.outcome not in (
            Outcome.ESCALATED_TO_MICROSOFT,
            Outcome.ROUTED_TO_INDIRECT_PROVIDER,
        )


@given(issues, partners)
def test_an_active_matching_incident_always_wins_over_escalation(issue, partner) -> None:  # type: ignore[no-untyped-def]
    active = IncidentFacts(id="EX1", service=issue.service, title="known")
    decision = decide(RULES, issue, partner, health=HealthView((active,)), now=NOW)
    assert decision.outcome is Outcome.LINKED_TO_INCIDENT
    assert decision.health_incident_id == "EX1"


@given(issues, partners)
def test_escalations_always_name_a_vehicle_the_partner_has(issue, partner) -> None:  # type: ignore[no-untyped-def]
    decision = decide(RULES, issue, partner, now=NOW)
    if decision.outcome is Outcome.ESCALATED_TO_MICROSOFT:
        assert decision.vehicle is not None
        assert (
            decision.vehicle is Vehicle.COMMERCIAL_SUPPORT
            or decision.vehicle in partner.support_vehicles
        )
