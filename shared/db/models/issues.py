"""Customers, their issues, the issue timeline and the classifier's decision."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, BigIntId, utcnow
from shared.ids import new_id


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("partner_id", "tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    tenant_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (
        # Also the index for a partner's issues: one on partner_id alone only cost writes.
        UniqueConstraint("partner_id", "external_ref"),
        Index("ix_issues_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"), default=None)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    external_ref: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    service: Mapped[str] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    category: Mapped[str | None] = mapped_column(String(32), default=None)
    # The PSA's own ticket type; the partner's psa_types may map it to a category.
    psa_type: Mapped[str | None] = mapped_column(String(200), default=None)
    severity: Mapped[str] = mapped_column(String(16), default="moderate")
    contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locale: Mapped[str | None] = mapped_column(String(8), default=None)
    status: Mapped[str] = mapped_column(String(16), default="received")
    microsoft_request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("microsoft_requests.id"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IssueEvent(Base):
    """One line of an issue's timeline."""

    __tablename__ = "issue_events"
    # The ops page's "last routed" reads the newest steps of one status.
    __table_args__ = (Index("ix_issue_events_status_at", "status", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    issue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issues.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Classification(Base):
    """The classifier's decision for one issue; at most one per issue."""

    __tablename__ = "classifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    issue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issues.id"), unique=True)
    category: Mapped[str | None] = mapped_column(String(32))
    category_source: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    vehicle: Mapped[str | None] = mapped_column(String(40), default=None)
    partner_role: Mapped[str | None] = mapped_column(String(32), default=None)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    rule_id: Mapped[str] = mapped_column(String(64))
    health_incident_id: Mapped[str | None] = mapped_column(String(64), default=None)
    cluster_id: Mapped[str | None] = mapped_column(String(64), default=None)
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
