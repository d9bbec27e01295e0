"""What the rules look at and what they decide: plain data, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time

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
    locale: str | None = None
    psa_type: str | None = None


@dataclass(frozen=True, slots=True)
class SupportHours:
    """When the partner's desk is staffed, in its own time zone (days: 0 = Monday)."""

    timezone: str
    days: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class PartnerFacts:
    csp_model: CspModel = CspModel.DIRECT_BILL
    support_vehicles: frozenset[Vehicle] = frozenset()
    locale: str = "en"
    support_hours: SupportHours | None = None
    # The PSA's ticket types and their categories, as the profile stores them.
    psa_types: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    id: str
    service: str
    classification: str = "incident"
    is_resolved: bool = False
    regions: tuple[str, ...] = ()
    tenant_ids: tuple[uuid.UUID, ...] = ()
    title: str = ""
    feature: str | None = None


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the health providers returned; ``available=False`` when they could not answer."""

    incidents: tuple[IncidentFacts, ...] = ()
    available: bool = True
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    id: str
    size: int


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
    severity: Severity | None = None
    health_incident_id: str | None = None
    cluster_id: str | None = None
    language: str | None = None
    confidence: float = 1.0
    tags: tuple[str, ...] = field(default_factory=tuple)
    matched_rules: tuple[str, ...] = field(default_factory=tuple)
