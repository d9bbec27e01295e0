"""Why a rule set decides what it decides: one line per rule, for ``escalation rules explain``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.classifier.engine import Facts, evaluate, first_mismatch, gather
from services.classifier.facts import (
    ClusterFacts,
    HealthView,
    IncidentFacts,
    IssueFacts,
    PartnerFacts,
)
from services.classifier.partner_facts import support_hours
from shared.rules.schema import RuleSet
from shared.vocabulary import Category, CspModel, Severity, Vehicle


class PartnerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csp_model: CspModel = CspModel.DIRECT_BILL
    support_vehicles: list[Vehicle] = Field(default_factory=list)
    locale: str = "en"
    support_hours: dict[str, Any] | None = None


class IncidentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    service: str
    title: str = ""
    is_resolved: bool = False
    regions: list[str] = Field(default_factory=list)


class ExplainInput(BaseModel):
    """An issue as the intake would pass it, plus the partner and health context to assume."""

    model_config = ConfigDict(extra="forbid")

    title: str
    description: str = ""
    service: str
    severity: Severity = Severity.MODERATE
    category: Category | None = None
    region: str | None = None
    tenant_id: uuid.UUID | None = None
    partner: PartnerInput = Field(default_factory=PartnerInput)
    incidents: list[IncidentInput] = Field(default_factory=list)
    cluster_size: int | None = Field(default=None, ge=2)


def facts_from(data: ExplainInput, now: datetime) -> Facts:
    issue = IssueFacts(
        title=data.title,
        description=data.description,
        service=data.service,
        severity=data.severity,
        category=data.category,
        region=data.region,
        tenant_id=data.tenant_id,
    )
    partner = PartnerFacts(
        csp_model=data.partner.csp_model,
        support_vehicles=frozenset(data.partner.support_vehicles),
        locale=data.partner.locale,
        support_hours=support_hours(data.partner.support_hours),
    )
    health = HealthView(
        tuple(
            IncidentFacts(
                id=i.id,
                service=i.service,
                title=i.title,
                is_resolved=i.is_resolved,
                regions=tuple(i.regions),
            )
            for i in data.incidents
        )
    )
    cluster = ClusterFacts(id="explain", size=data.cluster_size) if data.cluster_size else None
    return gather(issue, partner, health=health, cluster=cluster, now=now)


def explain(ruleset: RuleSet, facts: Facts) -> list[str]:
    """Human-readable lines: each rule up to the deciding one, then the decision."""
    lines = [
        f"category: {facts.category.value if facts.category else 'unknown'} "
        f"({facts.category_source}), language: {facts.inference.language or '?'}"
    ]
    for rule in ruleset.rules:
        failed = first_mismatch(rule.when, facts)
        if failed is not None:
            lines.append(
                f"  -  {rule.id}: no (needs {failed} = {_shown(getattr(rule.when, failed))})"
            )
            continue
        if rule.continue_:
            lines.append(f"  +  {rule.id}: matches, continues (tags {list(rule.then.tags)})")
            continue
        lines.append(f"  => {rule.id}: matches and decides")
        break
    decision = evaluate(ruleset, facts)
    lines.append(
        f"outcome: {decision.outcome.value}"
        + (f", vehicle: {decision.vehicle.value}" if decision.vehicle else "")
        + (f", role: {decision.partner_role.value}" if decision.partner_role else "")
    )
    lines.extend(f"reason: {reason}" for reason in decision.reasons)
    return lines


def _shown(value: object) -> str:
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted(str(getattr(v, "value", v)) for v in value)) + "]"
    return str(value)
