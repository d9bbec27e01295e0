"""Delivery plumbing: transactional outbox, consumer inbox, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, BigIntId, utcnow


class OutboxMessage(Base):
    """An event committed with the state change it announces, for the relay to publish.

    A row may carry a second record, its ``companion``: the lifecycle ``issues.updated`` of the
    status change the event announces, published with it (same key, its own topic and envelope).
    Whether it is still to be published is not in the row but in :class:`OutboxPending`, so
    that publishing it leaves the row as written (see there). ``claimed_until`` and
    ``attempts`` are as its writer gave them (leased to the writer's own relay, or not); its
    queue entry starts with them and the relays keep them there. ``redriven_at`` is when the
    reconciler last queued it again (:mod:`shared.reconciler`).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_aggregate_id_event_type", "aggregate_id", "event_type"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(96))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    redriven_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    companion_topic: Mapped[str | None] = mapped_column(String(200), default=None)
    companion_value: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    companion_headers: Mapped[list[Any] | None] = mapped_column(default=None)


class OutboxPending(Base):
    """An outbox row not yet published: the relays' queue, by the row's id.

    Every outbox row is born here, with the lease its writer gave it (a trigger on ``outbox``
    adds it, whoever writes the row: migration 0012), is leased here by the relays that claim
    it, and leaves once one has published it. Marking the outbox row itself sent rewrote the
    whole row, event and companion, and its indexes, three times per issue: a third of
    PostgreSQL's write-ahead log in the pipeline. Deleting this one is a few bytes. No foreign
    key: the outbox row is written first, and the sweep never deletes one still here.
    """

    __tablename__ = "outbox_pending"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class InboxRecord(Base):
    """An event a consumer has fully processed; the primary key makes processing once-only."""

    __tablename__ = "inbox"
    # Forgetting a consumer's old records (see shared.kafka.inbox.forget) reads this.
    __table_args__ = (Index("ix_inbox_consumer_processed_at", "consumer", "processed_at"),)

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The first answer given to an ``Idempotency-Key``, replayed for identical retries."""

    __tablename__ = "idempotency_keys"

    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column()
    location: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
