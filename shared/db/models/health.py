"""Service-health incidents and advisories (Graph ``serviceHealthIssue`` shape)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, utcnow

GLOBAL_SCOPE = "*"


class HealthIncident(Base):
    """An incident is known to everyone (``scope`` ``*``, from the ``health.incidents`` topic)
    or to one partner (``scope`` = its id, from the API): the same Microsoft incident id can be
    recorded by several partners without one seeing or changing another's."""

    __tablename__ = "health_incidents"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True, default=GLOBAL_SCOPE)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"), default=None)
    title: Mapped[str] = mapped_column(String(500))
    service: Mapped[str] = mapped_column(String(128), index=True)
    feature: Mapped[str | None] = mapped_column(String(128), default=None)
    classification: Mapped[str] = mapped_column(String(16), default="incident")
    status: Mapped[str] = mapped_column(String(48), default="serviceDegradation")
    is_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    start_at: Mapped[datetime | None] = mapped_column(default=None)
    end_at: Mapped[datetime | None] = mapped_column(default=None)
    impact_description: Mapped[str] = mapped_column(Text, default="")
    regions: Mapped[list[Any]] = mapped_column(default=list)
    tenant_ids: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
