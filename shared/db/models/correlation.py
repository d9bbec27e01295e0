"""Cross-tenant outage correlation: signals, the per-key lock row, and clusters."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, utcnow


class CorrelationKey(Base):
    """One row per (partner, service, region); locked FOR UPDATE by whoever correlates on it,
    so classifier and notifier instances take turns on the same key."""

    __tablename__ = "correlation_keys"

    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    service_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    region_key: Mapped[str] = mapped_column(String(64), primary_key=True)


class OutageCluster(Base):
    """Issues from several tenants that look like one regional outage; at most one open per key."""

    __tablename__ = "outage_clusters"
    __table_args__ = (
        Index(
            "uq_outage_clusters_open_key",
            "partner_id",
            "service_key",
            "region_key",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"))
    service_key: Mapped[str] = mapped_column(String(128))
    region_key: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    tenants: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClusterSignal(Base):
    """One failure report that may belong to an outage, timed by when the issue was received."""

    __tablename__ = "cluster_signals"
    __table_args__ = (
        Index(
            "ix_cluster_signals_key_observed",
            "partner_id",
            "service_key",
            "region_key",
            "observed_at",
        ),
        # Whether a tenant is new to its cluster, read without counting the cluster.
        Index("ix_cluster_signals_cluster_tenant", "cluster_id", "tenant_key"),
        # The members whose own requests the cluster's request has still to absorb.
        Index(
            "ix_cluster_signals_unabsorbed",
            "cluster_id",
            postgresql_where=text("cluster_id IS NOT NULL AND NOT absorbed"),
            sqlite_where=text("cluster_id IS NOT NULL AND NOT absorbed"),
        ),
    )

    issue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issues.id"), primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"))
    tenant_key: Mapped[str] = mapped_column(String(64))
    service_key: Mapped[str] = mapped_column(String(128))
    region_key: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[datetime] = mapped_column()
    cluster_id: Mapped[str | None] = mapped_column(ForeignKey("outage_clusters.id"), default=None)
    # Set by the notifier once the cluster's Microsoft request has folded in this member's own
    # (or found it had none); reset when the signal joins a cluster.
    absorbed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
