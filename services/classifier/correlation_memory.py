"""What a classifier transaction knows about correlation while it holds the keys.

Under a key's lock nobody else changes the key's reports or clusters, so what the transaction
read (or wrote) stays true until it ends: each report an issue made before, the key's open
cluster, which tenants that cluster has. A batch reads all of it for its reports in three
queries (:func:`preload_reports`); correlating one report at a time would ask for it with
every report. Kept per transaction (see :mod:`shared.db.scoped`): a batch that fails is
handled again in new transactions, which read afresh.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ClauseElement

from shared.correlation_lock import Key, read_signals
from shared.db.base import table_of
from shared.db.listed import paired
from shared.db.models import ClusterSignal, OutageCluster
from shared.db.scoped import transaction_scoped
from shared.db.staged import joined

_SIGNALS = "correlation.signals"
_OPEN = "correlation.open_clusters"
_MEMBERS = "correlation.cluster_members"


@dataclass(slots=True)
class Members:
    """The tenants of a cluster this transaction knows to be in it, and those it knows either
    way (None: all, for a cluster it formed)."""

    present: set[str] = field(default_factory=set)
    asked: set[str] | None = field(default_factory=set)


def signals(session: AsyncSession) -> dict[uuid.UUID, ClusterSignal | None]:
    """Issue id -> the report it made before, or None: it made none."""
    return transaction_scoped(session, _SIGNALS, dict[uuid.UUID, ClusterSignal | None])


def open_clusters(session: AsyncSession) -> dict[Key, OutageCluster | None]:
    """Key -> its open cluster, or None: it has none."""
    return transaction_scoped(session, _OPEN, dict[Key, OutageCluster | None])


def members(session: AsyncSession, cluster_id: str) -> Members:
    return transaction_scoped(session, _MEMBERS, dict[str, Members]).setdefault(
        cluster_id, Members()
    )


async def preload_reports(
    session: AsyncSession, reports: Sequence[tuple[uuid.UUID, Key, str]]
) -> None:
    """For a batch's possible reports (issue, key, tenant), once it holds their keys: the
    reports the issues made before, the keys' open clusters, and which of the tenants those
    clusters have."""
    if not reports:
        return
    issue_ids = [issue_id for issue_id, _, _ in reports]
    earlier = {signal.issue_id: signal for signal in await read_signals(session, issue_ids)}
    signals(session).update({issue_id: earlier.get(issue_id) for issue_id in issue_ids})
    partners = {partner_id for _, (partner_id, _, _), _ in reports}
    opened = await session.scalars(
        select(OutageCluster).where(
            OutageCluster.partner_id.in_(partners), OutageCluster.status == "open"
        )
    )
    by_key = {(c.partner_id, c.service_key, c.region_key): c for c in opened}
    open_clusters(session).update({key: by_key.get(key) for _, key, _ in reports})
    asked = {
        (by_key[key].id, signal.tenant_key if (signal := earlier.get(issue_id)) else tenant)
        for issue_id, key, tenant in reports
        if key in by_key
    }
    if not asked:
        return
    statements = await joined(session)
    pairs = {"clusters": [c for c, _ in asked], "tenants": [t for _, t in asked]}
    present = {(c, t) for c, t in await statements.fetch(_tenants_present, pairs)} & asked
    for cluster_id, tenant in asked:
        known = members(session, cluster_id)
        assert known.asked is not None
        known.asked.add(tenant)
        if (cluster_id, tenant) in present:
            known.present.add(tenant)


def _tenants_present(dialect: str) -> ClauseElement:
    columns = ("cluster_id", "tenant_key")
    return paired(
        table_of(ClusterSignal), columns, ("clusters", "tenants"), dialect, chosen=columns
    )
