"""The rules file, as pydantic models: unknown fields and values are errors, not surprises.

A rule set is ordered; the first rule that matches and does not ``continue`` decides. Rules that
``continue`` only add tags, a severity or a reason, and evaluation goes on.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.vocabulary import Category, CspModel, Locale, Outcome, Role, Severity, Vehicle

UNKNOWN = "unknown"
BEST_TECHNICAL = "best_technical"

# Placeholders a reason may use; evaluation fills every one of them.
PLACEHOLDERS = frozenset(
    {
        "category",
        "service",
        "region",
        "vehicle",
        "role",
        "incident_id",
        "incident_title",
        "cluster_size",
        "severity",
    }
)


class When(BaseModel):
    """Conditions, all of which must hold. An empty ``when`` matches everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: frozenset[Category | Literal["unknown"]] | None = None
    category_source: Literal["given", "psa_type", "inferred", "correlated"] | None = None
    service: frozenset[str] | None = None
    region: frozenset[str] | None = None
    severity: frozenset[Severity] | None = None
    csp_model: frozenset[CspModel] | None = None
    entitlements_any: frozenset[Vehicle] | None = None
    has_technical_vehicle: bool | None = None
    health_match: bool | None = None
    health_available: bool | None = None
    in_cluster: bool | None = None
    cluster_size_at_least: int | None = Field(default=None, ge=2)
    text_any: frozenset[str] | None = None
    within_support_hours: bool | None = None
    confidence_below: float | None = Field(default=None, gt=0, le=1)

    @field_validator("service", "region", "text_any")
    @classmethod
    def _fold(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        return None if value is None else frozenset(v.casefold() for v in value)

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


class Then(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome | None = None
    vehicle: Vehicle | Literal["best_technical"] | None = None
    partner_role: Role | None = None
    severity: Severity | None = None
    category: Category | None = None
    tags: tuple[str, ...] = ()
    reason: dict[Locale, str] = Field(default_factory=dict)

    @field_validator("reason")
    @classmethod
    def _reason_placeholders(cls, value: dict[Locale, str]) -> dict[Locale, str]:
        if value and Locale.EN not in value:
            raise ValueError("a reason needs at least an English ('en') text")
        for locale, text in value.items():
            names = {field for _, field, _, _ in string.Formatter().parse(text) if field}
            unknown = names - PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"reason ({locale}) uses unknown placeholders {sorted(unknown)}; "
                    f"known: {sorted(PLACEHOLDERS)}"
                )
        return value


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    description: str = ""
    when: When = Field(default_factory=When)
    then: Then
    continue_: bool = Field(default=False, alias="continue")

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        then = self.then
        if self.continue_:
            if then.outcome is not None or then.vehicle is not None:
                raise ValueError(
                    "a 'continue' rule may add tags, severity or a reason, "
                    "not an outcome or vehicle"
                )
            return self
        if then.outcome is None:
            raise ValueError("a rule that does not 'continue' must set an outcome")
        if then.outcome is Outcome.ESCALATED_TO_MICROSOFT and then.vehicle is None:
            raise ValueError("escalated_to_microsoft needs a vehicle")
        if then.outcome is not Outcome.ESCALATED_TO_MICROSOFT and then.vehicle is not None:
            raise ValueError("only escalated_to_microsoft takes a vehicle")
        if then.vehicle == BEST_TECHNICAL and self.when.has_technical_vehicle is not True:
            raise ValueError("vehicle: best_technical needs 'has_technical_vehicle: true' in when")
        if then.outcome is Outcome.PARTNER_RESOLVES and then.partner_role is None:
            raise ValueError("partner_resolves needs the partner_role that should act")
        return self


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    name: str = "rules"
    rules: tuple[Rule, ...] = Field(min_length=1)
