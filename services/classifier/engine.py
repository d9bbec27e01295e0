"""Evaluate a rule set against an issue's facts. Pure: no I/O, the clock is an argument."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.classifier.facts import (
    ClusterFacts,
    Decision,
    HealthView,
    IncidentFacts,
    Inference,
    IssueFacts,
    PartnerFacts,
)
from services.classifier.inference import fold, infer
from services.classifier.matching import matching_incident, technical_vehicle, within_hours
from shared.rules.schema import BEST_TECHNICAL, UNKNOWN, Rule, RuleSet, When
from shared.vocabulary import Category, Locale, Severity, Vehicle, known_category

FROM_PSA_TYPE = {
    "en": "Category from the PSA ticket type {psa_type!r}",
    "es": "Categoría tomada del tipo de ticket del PSA {psa_type!r}",
    "de": "Kategorie aus dem PSA-Tickettyp {psa_type!r}",
    "fr": "Catégorie tirée du type de ticket du PSA {psa_type!r}",
}
EVIDENCE = {
    "en": "Category inferred from: {terms}",
    "es": "Categoría deducida de: {terms}",
    "de": "Kategorie abgeleitet aus: {terms}",
    "fr": "Catégorie déduite de : {terms}",
}
HEALTH_UNAVAILABLE = {
    "en": "Service health could not be checked ({note}); the escalation was not suppressed",
    "es": "No se pudo consultar el estado del servicio ({note}); no se suprimió la escalación",
    "de": "Der Dienststatus konnte nicht geprüft werden ({note}); die Eskalation wurde nicht "
    "unterdrückt",
    "fr": "L'état du service n'a pas pu être vérifié ({note}) ; l'escalade n'a pas été supprimée",
}


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a condition may look at, computed once per issue."""

    issue: IssueFacts
    partner: PartnerFacts
    inference: Inference
    category: Category | None
    category_source: str
    incident: IncidentFacts | None
    health: HealthView
    cluster: ClusterFacts | None
    staffed: bool
    text: str


def gather(
    issue: IssueFacts,
    partner: PartnerFacts,
    *,
    health: HealthView,
    cluster: ClusterFacts | None,
    now: datetime,
) -> Facts:
    inference = infer(issue.title, issue.description, language_hint=issue.locale or partner.locale)
    category: Category | None
    if issue.category is not None:
        category, source = issue.category, "given"
    elif (typed := psa_category(partner.psa_types, issue.psa_type)) is not None:
        category, source = typed, "psa_type"
    else:
        category, source = inference.category, "inferred"
    facts = Facts(
        issue=issue,
        partner=partner,
        inference=inference,
        category=category,
        category_source=source,
        incident=matching_incident(issue, health.incidents),
        health=health,
        cluster=cluster,
        staffed=within_hours(partner.support_hours, now),
        text=fold(f"{issue.title} {issue.description}"),
    )
    return facts if cluster is None else with_cluster(facts, cluster)


def psa_category(types: Mapping[str, str], psa_type: str | None) -> Category | None:
    """The category the partner maps the PSA's ticket type to, the type compared in any case;
    ``None`` for a type it does not map."""
    if not psa_type or not types:
        return None
    wanted = psa_type.strip().casefold()
    for name, value in types.items():
        if name.casefold() == wanted and (category := known_category(value)) is not None:
            return category
    return None


def with_cluster(facts: Facts, cluster: ClusterFacts) -> Facts:
    """The facts of an issue that belongs to a cross-tenant outage cluster."""
    return replace(
        facts, cluster=cluster, category=Category.REGIONAL_MULTITENANT, category_source="correlated"
    )


def _in(value: object, allowed: frozenset[Any]) -> bool:
    return value in allowed


# One check per condition name: (the condition's value, the facts) -> does it hold?
CHECKS: dict[str, Callable[[Any, Facts], bool]] = {
    "category": lambda want, f: _in(f.category or UNKNOWN, want),
    "category_source": lambda want, f: f.category_source == want,
    "service": lambda want, f: _in(f.issue.service.casefold(), want),
    "region": lambda want, f: _in((f.issue.region or "").casefold(), want),
    "severity": lambda want, f: _in(f.issue.severity, want),
    "csp_model": lambda want, f: _in(f.partner.csp_model, want),
    "entitlements_any": lambda want, f: bool(want & f.partner.support_vehicles),
    "has_technical_vehicle": lambda want, f: (technical_vehicle(f.partner) is not None) == want,
    "health_match": lambda want, f: (f.incident is not None) == want,
    "health_available": lambda want, f: f.health.available == want,
    "in_cluster": lambda want, f: (f.cluster is not None) == want,
    "cluster_size_at_least": lambda want, f: f.cluster is not None and f.cluster.size >= want,
    "text_any": lambda want, f: any(fold(term) in f.text for term in want),
    "within_support_hours": lambda want, f: f.staffed == want,
    "confidence_below": lambda want, f: (
        f.category_source == "inferred" and f.inference.confidence < want
    ),
}


def first_mismatch(when: When, facts: Facts) -> str | None:
    """The first condition of ``when`` that does not hold, or None when all hold."""
    for name in When.model_fields:
        wanted = getattr(when, name)
        if wanted is not None and not CHECKS[name](wanted, facts):
            return name
    return None


def matches(when: When, facts: Facts) -> bool:
    return first_mismatch(when, facts) is None


def evaluate(ruleset: RuleSet, facts: Facts) -> Decision:
    """The first matching rule without ``continue`` decides; continue rules add to it."""
    locale = _locale(facts)
    tags: list[str] = []
    reasons: list[str] = []
    matched: list[str] = []
    severity: Severity | None = None
    for rule in ruleset.rules:
        if not matches(rule.when, facts):
            continue
        matched.append(rule.id)
        tags.extend(rule.then.tags)
        severity = rule.then.severity or severity
        vehicle = _vehicle(rule, facts)
        reason = _reason(rule, facts, locale, vehicle)
        if reason:
            reasons.append(reason)
        if rule.continue_:
            continue
        return Decision(
            outcome=rule.then.outcome,  # type: ignore[arg-type]  # validated: terminal rules have one
            rule_id=rule.id,
            category=rule.then.category or facts.category,
            category_source=facts.category_source,
            reasons=(*reasons, *_extra_reasons(facts, locale)),
            vehicle=vehicle,
            partner_role=rule.then.partner_role,
            severity=severity,
            health_incident_id=facts.incident.id if facts.incident else None,
            cluster_id=facts.cluster.id if facts.cluster else None,
            language=facts.inference.language,
            confidence=1.0 if facts.category_source != "inferred" else facts.inference.confidence,
            tags=tuple(dict.fromkeys(tags)),
            matched_rules=tuple(matched),
        )
    raise AssertionError("a validated rule set ends with a catch-all")


def _vehicle(rule: Rule, facts: Facts) -> Vehicle | None:
    if rule.then.vehicle == BEST_TECHNICAL:
        return technical_vehicle(facts.partner)
    return rule.then.vehicle  # type: ignore[return-value]


def _locale(facts: Facts) -> str:
    code = (facts.partner.locale or "en")[:2].lower()
    return code if code in Locale.__members__.values() else "en"


def _reason(rule: Rule, facts: Facts, locale: str, vehicle: Vehicle | None) -> str | None:
    texts = rule.then.reason
    if not texts:
        return None
    template = texts.get(Locale(locale), texts[Locale.EN])
    incident = facts.incident
    return template.format_map(
        {
            "category": (rule.then.category or facts.category or UNKNOWN),
            "service": facts.issue.service,
            "region": facts.issue.region or "-",
            "vehicle": vehicle.value if vehicle else "-",
            "role": rule.then.partner_role.value if rule.then.partner_role else "-",
            "incident_id": incident.id if incident else "-",
            "incident_title": incident.title if incident else "-",
            "cluster_size": facts.cluster.size if facts.cluster else 0,
            "severity": facts.issue.severity.value,
        }
    )


def _extra_reasons(facts: Facts, locale: str) -> tuple[str, ...]:
    extra = []
    if facts.category_source == "inferred" and facts.inference.evidence:
        terms = ", ".join(repr(t) for t in facts.inference.evidence)
        extra.append(EVIDENCE[locale].format(terms=terms))
    if facts.category_source == "psa_type":
        extra.append(FROM_PSA_TYPE[locale].format(psa_type=facts.issue.psa_type))
    if not facts.health.available:
        extra.append(HEALTH_UNAVAILABLE[locale].format(note=facts.health.note or "no answer"))
    return tuple(extra)


def decide(
    ruleset: RuleSet,
    issue: IssueFacts,
    partner: PartnerFacts,
    *,
    health: HealthView | None = None,
    cluster: ClusterFacts | None = None,
    now: datetime,
) -> Decision:
    """Gather the facts and evaluate the rule set: exactly one decision for any input."""
    facts = gather(issue, partner, health=health or HealthView(), cluster=cluster, now=now)
    return evaluate(ruleset, facts)
