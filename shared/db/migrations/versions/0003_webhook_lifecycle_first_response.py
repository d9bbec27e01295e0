"""webhook lifecycle and first response targets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 06:11:22.597616
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("disabled_reason")

    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.drop_column("overdue_at")
        batch_op.drop_column("first_response_at")
        batch_op.drop_column("first_response_due_at")
        batch_op.drop_column("filed_at")
