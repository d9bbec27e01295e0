"""Service-health look-ups: the local store, and remote providers behind one interface."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.classifier.facts import HealthView, IncidentFacts
from shared.db.models import HealthIncident


class HealthProvider(Protocol):
    """Active (unresolved) incidents and advisories that may concern an issue.

    Implementations never raise for an unavailable source: they answer ``available=False``
    with a note, so a missing answer can never suppress an escalation.
    """

    async def lookup(
        self, *, partner_id: uuid.UUID, tenant_id: uuid.UUID | None, service: str
    ) -> HealthView: ...


BATCH_KEY = "classifier.local_health"


async def local_incidents(session: AsyncSession, *, partner_id: uuid.UUID) -> HealthView:
    """Incidents pushed through the API or the ``health.incidents`` topic (global or the
    partner's own), read in the caller's transaction, or from :func:`preload_incidents`."""
    preloaded: dict[uuid.UUID, HealthView] = session.info.get(BATCH_KEY, {})
    if partner_id in preloaded:
        return preloaded[partner_id]
    return (await _incidents(session, {partner_id}))[partner_id]


async def preload_incidents(session: AsyncSession, partner_ids: set[uuid.UUID]) -> None:
    """Read the incidents of several partners in one query, for the rest of this transaction."""
    session.info[BATCH_KEY] = await _incidents(session, partner_ids)


async def _incidents(
    session: AsyncSession, partner_ids: set[uuid.UUID]
) -> dict[uuid.UUID, HealthView]:
    rows = await session.scalars(
        select(HealthIncident)
        .where(HealthIncident.is_resolved.is_(False))
        .where(or_(HealthIncident.partner_id.is_(None), HealthIncident.partner_id.in_(partner_ids)))
        .order_by(HealthIncident.start_at.desc())
    )
    facts = [(row.partner_id, _facts(row)) for row in rows]
    return {
        partner: HealthView(tuple(f for owner, f in facts if owner in (None, partner)))
        for partner in partner_ids
    }


def _facts(row: HealthIncident) -> IncidentFacts:
    return IncidentFacts(
        id=row.id,
        service=row.service,
        classification=row.classification,
        is_resolved=row.is_resolved,
        regions=tuple(row.regions),
        tenant_ids=tuple(uuid.UUID(str(t)) for t in row.tenant_ids),
        title=row.title,
        feature=row.feature,
    )


def merge(*views: HealthView) -> HealthView:
    """All incidents; available only if every source answered, with their notes."""
    notes = [v.note for v in views if v.note]
    return HealthView(
        incidents=tuple(i for v in views for i in v.incidents),
        available=all(v.available for v in views),
        note="; ".join(notes) or None,
    )
