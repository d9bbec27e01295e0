"""Service-health look-ups: the local store, and remote providers behind one interface."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from services.classifier.facts import HealthView, IncidentFacts
from shared.db.base import table_of
from shared.db.listed import among, listed_ids
from shared.db.models import HealthIncident
from shared.db.staged import joined


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
    statements = await joined(session)
    rows = await statements.fetch(
        _unresolved, {"partners": listed_ids(partner_ids, statements.dialect)}
    )
    facts = [(row[0], _facts(row[1:])) for row in rows]
    return {
        partner: HealthView(tuple(f for owner, f in facts if owner in (None, partner)))
        for partner in partner_ids
    }


def _unresolved(dialect: str) -> ClauseElement:
    """The unresolved incidents known to everyone or to one of the partners ``partners``,
    newest first; the owner, then what :func:`_facts` reads."""
    t = table_of(HealthIncident)
    return (
        select(
            t.c.partner_id,
            t.c.id,
            t.c.service,
            t.c.classification,
            t.c.is_resolved,
            t.c.regions,
            t.c.tenant_ids,
            t.c.title,
            t.c.feature,
        )
        .where(t.c.is_resolved == false())
        .where(or_(t.c.partner_id.is_(None), among(t.c.partner_id, "partners", dialect)))
        .order_by(t.c.start_at.desc())
    )


def _facts(row: Sequence[Any]) -> IncidentFacts:
    id_, service, classification, is_resolved, regions, tenant_ids, title, feature = row
    return IncidentFacts(
        id=id_,
        service=service,
        classification=classification,
        is_resolved=is_resolved,
        regions=tuple(regions),
        tenant_ids=tuple(uuid.UUID(str(t)) for t in tenant_ids),
        title=title,
        feature=feature,
    )


def merge(*views: HealthView) -> HealthView:
    """All incidents; available only if every source answered, with their notes."""
    notes = [v.note for v in views if v.note]
    return HealthView(
        incidents=tuple(i for v in views for i in v.incidents),
        available=all(v.available for v in views),
        note="; ".join(notes) or None,
    )
