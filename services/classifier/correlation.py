"""Cross-tenant outage detection: N tenants, one service and region, one window ⇒ one cluster.

Runs inside the classifier's transaction with the key locked, so instances take turns and each
sees what the others committed. Windows are measured on when issues were received, not when
they are processed, so issues arriving out of order correlate the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.classifier import correlation_memory as memory
from services.classifier.facts import ClusterFacts
from shared.correlation_lock import Key, correlation_key, lock_correlation_key
from shared.db.models import ClusterSignal, OutageCluster, Partner
from shared.settings import ClassifierSettings
from shared.vocabulary import Category

FAILURE_CATEGORIES = frozenset(
    {
        Category.SERVICE_UNAVAILABLE,
        Category.NETWORK_OUTAGE,
        Category.BUG,
        Category.REGIONAL_MULTITENANT,
    }
)


@dataclass(frozen=True, slots=True)
class Policy:
    enabled: bool
    min_tenants: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class Correlated:
    cluster: ClusterFacts
    newly_linked: tuple[uuid.UUID, ...]  # earlier issues that joined when the cluster formed


def policy_for(partner: Partner, defaults: ClassifierSettings) -> Policy:
    """The partner's own correlation settings over the deployment's defaults."""
    own: dict[str, Any] = partner.correlation or {}
    return Policy(
        enabled=bool(own.get("enabled", True)),
        min_tenants=max(2, int(own.get("min_tenants", defaults.correlation_min_tenants))),
        window=timedelta(minutes=float(own.get("window_min", defaults.correlation_window_min))),
    )


@dataclass(frozen=True, slots=True)
class Report:
    issue_id: uuid.UUID
    partner_id: uuid.UUID
    tenant: str
    service: str
    region: str
    observed_at: datetime


async def correlate(session: AsyncSession, report: Report, policy: Policy) -> Correlated | None:
    """Record the report; return the cluster it belongs to, forming one if N tenants agree.
    What the transaction knows already under the key's lock is not read again (see
    :mod:`services.classifier.correlation_memory`)."""
    service_key, region_key = correlation_key(report.service, report.region)
    key = (report.partner_id, service_key, region_key)
    await lock_correlation_key(session, *key)
    signal = await _signal(session, report, service_key, region_key)
    cluster = await _open_cluster(session, key)
    if cluster is not None and report.observed_at > cluster.last_seen_at + policy.window:
        cluster.status = "closed"  # quiet for a whole window: that outage is over
        await session.flush()  # before another opens: one open cluster per key
        cluster = memory.open_clusters(session)[key] = None
    if cluster is not None and report.observed_at >= cluster.first_seen_at - policy.window:
        return Correlated(await _join(session, cluster, [signal]), ())
    if cluster is not None:
        return None  # far older than the open cluster: reported on its own

    nearby = list(
        await session.scalars(
            select(ClusterSignal).where(
                ClusterSignal.partner_id == report.partner_id,
                ClusterSignal.service_key == service_key,
                ClusterSignal.region_key == region_key,
                ClusterSignal.cluster_id.is_(None),
                ClusterSignal.observed_at >= report.observed_at - policy.window,
                ClusterSignal.observed_at <= report.observed_at + policy.window,
            )
        )
    )
    if len({s.tenant_key for s in nearby}) < policy.min_tenants:
        return None
    cluster = OutageCluster(
        id=f"cl_{uuid.uuid4().hex[:16]}",
        partner_id=report.partner_id,
        service_key=service_key,
        region_key=region_key,
        service=report.service,
        region=report.region,
        status="open",
        tenants=0,
        first_seen_at=min(s.observed_at for s in nearby),
        last_seen_at=max(s.observed_at for s in nearby),
    )
    session.add(cluster)
    await session.flush()  # before its members refer to it
    memory.open_clusters(session)[key] = cluster
    memory.members(session, cluster.id).asked = None  # new: nobody is in it yet
    facts = await _join(session, cluster, nearby)
    return Correlated(facts, tuple(s.issue_id for s in nearby if s.issue_id != report.issue_id))


async def _signal(
    session: AsyncSession, report: Report, service_key: str, region_key: str
) -> ClusterSignal:
    """The issue's report: the one it made before (classified again), or a new one, written
    with the transaction's next flush."""
    signals = memory.signals(session)
    if report.issue_id in signals:
        signal = signals[report.issue_id]
    else:
        signal = await session.get(ClusterSignal, report.issue_id)
    if signal is None:
        signal = ClusterSignal(
            issue_id=report.issue_id,
            partner_id=report.partner_id,
            tenant_key=report.tenant,
            service_key=service_key,
            region_key=region_key,
            observed_at=report.observed_at,
        )
        session.add(signal)
        signals[report.issue_id] = signal
    return signal


async def _open_cluster(session: AsyncSession, key: Key) -> OutageCluster | None:
    clusters = memory.open_clusters(session)
    if key not in clusters:
        partner_id, service_key, region_key = key
        clusters[key] = await session.scalar(
            select(OutageCluster).where(
                OutageCluster.partner_id == partner_id,
                OutageCluster.service_key == service_key,
                OutageCluster.region_key == region_key,
                OutageCluster.status == "open",
            )
        )
    return clusters[key]


async def _join(
    session: AsyncSession, cluster: OutageCluster, signals: list[ClusterSignal]
) -> ClusterFacts:
    joining = [signal for signal in signals if signal.cluster_id != cluster.id]
    # A cluster of an outage can hold thousands of tenants: counted as they join, asking only
    # whether the joining ones are in it already, unless the transaction knows. Those that
    # joined in it are remembered, as they may not be written yet.
    known = memory.members(session, cluster.id)
    tenants = {signal.tenant_key for signal in joining} - known.present
    unsure = set() if known.asked is None else tenants - known.asked
    if unsure:
        with session.no_autoflush:
            present = set(
                await session.scalars(
                    select(ClusterSignal.tenant_key)
                    .where(
                        ClusterSignal.cluster_id == cluster.id,
                        ClusterSignal.tenant_key.in_(unsure),
                    )
                    .distinct()
                )
            )
        tenants -= present
        known.present |= present
    cluster.tenants += len(tenants)
    known.present |= tenants
    for signal in joining:
        signal.cluster_id = cluster.id
        signal.absorbed = False  # the notifier has this member's own request to look at
        cluster.first_seen_at = min(cluster.first_seen_at, signal.observed_at)
        cluster.last_seen_at = max(cluster.last_seen_at, signal.observed_at)
    return ClusterFacts(id=cluster.id, size=cluster.tenants)
