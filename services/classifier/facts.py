"""What the rules look at and what they decide: plain data, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from shared.vocabulary import Category, CspModel, Outcome, Role, Severity, Vehicle


@dataclass(frozen=True, slots=True)
class IssueFacts:
    title: str
    description: str
    service: str
    severity: Severity
    category: Category | None = None
    region: str | None = None
    tenant_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class PartnerFacts:
    csp_model: CspModel = CspModel.DIRECT_BILL
    support_vehicles: frozenset[Vehicle] = frozenset()
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    id: str
    service: str
    classification: str = "incident"
    is_resolved: bool = False
    regions: tuple[str, ...] = ()
    tenant_ids: tuple[uuid.UUID, ...] = ()
    title: str = ""


@dataclass(frozen=True, slots=True)
class Inference:
    category: Category | None
    language: str | None
    evidence: tuple[str, ...] = ()
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    rule_id: str
    category: Category | None
    category_source: str
    reasons: tuple[str, ...]
    vehicle: Vehicle | None = None
    partner_role: Role | None = None
    health_incident_id: str | None = None
    language: str | None = None
    confidence: float = 1.0
    tags: tuple[str, ...] = field(default_factory=tuple)
