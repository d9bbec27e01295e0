"""What the notifier opens: Microsoft request records and indirect-provider hand-offs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, utcnow
from shared.ids import new_id


class MicrosoftRequest(Base):
    """A Partner Center ServiceRequest to file, one per issue or per correlated cluster.

    ``dedupe_key`` (``issue:<id>`` or ``cluster:<id>``) is unique, so two racing notifiers
    cannot open the same request twice.
    """

    __tablename__ = "microsoft_requests"
    __table_args__ = (
        Index("ix_microsoft_requests_submission_next_at", "submission", "submission_next_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(96), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    support_topic_id: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(24), default="none")
    primary_contact: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[list[Any]] = mapped_column(default=list)
    vehicle: Mapped[str] = mapped_column(String(40))
    cluster_id: Mapped[str | None] = mapped_column(String(64), default=None)
    agent_locale: Mapped[str] = mapped_column(String(16), default="en-US")
    microsoft_id: Mapped[str | None] = mapped_column(String(64), default=None)
    partner_center_payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("microsoft_requests.id"), default=None
    )
    filed_at: Mapped[datetime | None] = mapped_column(default=None)
    first_response_due_at: Mapped[datetime | None] = mapped_column(default=None)
    first_response_at: Mapped[datetime | None] = mapped_column(default=None)
    overdue_at: Mapped[datetime | None] = mapped_column(default=None)
    # The Partner Center connector's side: ``manual`` (a person files it), ``queued``,
    # ``submitted`` or ``failed`` (gave up; a person files it).
    submission: Mapped[str] = mapped_column(String(16), default="manual")
    submission_attempts: Mapped[int] = mapped_column(Integer, default=0)
    submission_next_at: Mapped[datetime | None] = mapped_column(default=None)
    submission_claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    submission_error: Mapped[str | None] = mapped_column(String(500), default=None)
    polled_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MicrosoftRequestIssue(Base):
    """An issue a Microsoft request is for: its own, or one of its cluster's members (those
    whose own requests it absorbed among them). A row each, so a cluster that grows by a
    thousand tenants adds a thousand small rows rather than rewriting one list a thousand times."""

    __tablename__ = "microsoft_request_issues"

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("microsoft_requests.id"), primary_key=True
    )
    issue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issues.id"), primary_key=True)


class ProviderHandoff(Base):
    """An issue an indirect reseller hands to its indirect provider."""

    __tablename__ = "provider_handoffs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    issue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issues.id"), unique=True)
    provider: Mapped[dict[str, Any]] = mapped_column(default=dict)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The ``webhook-id`` of every delivery to the provider's endpoints.
    delivery_ids: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
