"""Partner rows turned into the facts the rules read."""

from __future__ import annotations

from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.classifier.facts import PartnerFacts, SupportHours
from shared.db.models import Partner
from shared.vocabulary import CspModel, Vehicle

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def partner_facts(partner: Partner) -> PartnerFacts:
    vehicles = frozenset(Vehicle(v) for v in partner.support_vehicles if v in set(Vehicle))
    return PartnerFacts(
        csp_model=CspModel(partner.csp_model),
        support_vehicles=vehicles,
        locale=partner.locale,
        support_hours=support_hours((partner.support_offer or {}).get("hours")),
        psa_types=partner.psa_types or {},
    )


def support_hours(raw: Any) -> SupportHours | None:
    """``{"timezone": "Europe/Madrid", "days": ["mon", …], "start": "08:00", "end": "18:00"}``.

    Anything that does not parse means "no hours known", which the rules treat as staffed.
    """
    if not isinstance(raw, dict):
        return None
    try:
        ZoneInfo(raw["timezone"])
        return SupportHours(
            timezone=raw["timezone"],
            days=frozenset(DAYS.index(d.lower()[:3]) for d in raw.get("days", DAYS[:5])),
            start=time.fromisoformat(raw["start"]),
            end=time.fromisoformat(raw["end"]),
        )
    except (KeyError, ValueError, TypeError, ZoneInfoNotFoundError):
        return None
