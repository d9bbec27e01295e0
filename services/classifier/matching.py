"""Pure look-ups the rules rely on: which incident covers an issue, which plan to escalate with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from services.classifier.facts import IncidentFacts, IssueFacts, PartnerFacts, SupportHours
from services.classifier.inference import fold
from shared.vocabulary import TECHNICAL_VEHICLE_PREFERENCE, Vehicle


def matching_incident(
    issue: IssueFacts, incidents: Sequence[IncidentFacts]
) -> IncidentFacts | None:
    """The first active incident or advisory covering the issue's service, region and tenant."""
    service = fold(issue.service)
    for incident in incidents:
        if incident.is_resolved or fold(incident.service) != service:
            continue
        regions = {fold(r) for r in incident.regions}
        if regions and issue.region and fold(issue.region) not in regions:
            continue
        if incident.tenant_ids and issue.tenant_id not in incident.tenant_ids:
            continue
        return incident
    return None


def technical_vehicle(partner: PartnerFacts) -> Vehicle | None:
    """Premier, then Advanced, then Partner cloud support: the best plan the partner has."""
    return next((v for v in TECHNICAL_VEHICLE_PREFERENCE if v in partner.support_vehicles), None)


def within_hours(hours: SupportHours | None, now: datetime) -> bool:
    """True when the desk is staffed at ``now``; a partner without hours is always staffed."""
    if hours is None:
        return True
    local = now.astimezone(ZoneInfo(hours.timezone))
    return local.weekday() in hours.days and hours.start <= local.time() < hours.end
