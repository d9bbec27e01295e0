"""the outbox's unpublished rows move to a queue of their own, outbox_pending

A row published was marked so in place (sent_at): PostgreSQL wrote the whole row again, its
event and companion, with an entry in each of its indexes, three times per issue. Publishing
now deletes the row's id from outbox_pending, and the outbox row stays as written. A trigger
queues every row inserted into the outbox, whoever inserts it, with the lease its writer gave
it; relays lease rows in the queue from then on. sent_at goes, with its index; redriven_at
(when the reconciler last queued a row again) comes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: one statement-level trigger, the statement's new rows as a table.
_PG_FUNCTION = """
CREATE FUNCTION outbox_queue_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id, claimed_until, attempts)
    SELECT id, claimed_until, attempts FROM outbox_new;
    RETURN NULL;
END
$$
"""
_PG_TRIGGER = """
CREATE TRIGGER outbox_queue_new AFTER INSERT ON outbox
REFERENCING NEW TABLE AS outbox_new
FOR EACH STATEMENT EXECUTE FUNCTION outbox_queue_new()
"""
# SQLite has row-level triggers only.
_SQLITE_TRIGGER = """
CREATE TRIGGER outbox_queue_new AFTER INSERT ON outbox
BEGIN
    INSERT INTO outbox_pending (id, claimed_until, attempts)
    VALUES (NEW.id, NEW.claimed_until, NEW.attempts);
END
"""


def upgrade() -> None:
    op.create_table(
        "outbox_pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_pending")),
    )
    op.execute(
        "INSERT INTO outbox_pending (id, claimed_until, attempts) "
        "SELECT id, claimed_until, attempts FROM outbox WHERE sent_at IS NULL"
    )
    # On SQLite this copies the table, which would drop a trigger made before it.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_sent_at_id")
        batch_op.drop_column("sent_at")
        batch_op.add_column(sa.Column("redriven_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER outbox_queue_new ON outbox")
        op.execute("DROP FUNCTION outbox_queue_new()")
    else:
        op.execute("DROP TRIGGER outbox_queue_new")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("redriven_at")
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbox_sent_at_id", ["sent_at", "id"], unique=False)
    # Published rows get the time of the downgrade: when they went out is not kept.
    op.execute(
        "UPDATE outbox SET sent_at = CURRENT_TIMESTAMP "
        "WHERE id NOT IN (SELECT id FROM outbox_pending)"
    )
    op.drop_table("outbox_pending")
