"""partner center connector and provider endpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 07:00:35.396624
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        # Records made before the connector existed are a person's to file.
        batch_op.add_column(
            sa.Column("submission", sa.String(length=16), nullable=False, server_default="manual")
        )
        batch_op.add_column(
            sa.Column("submission_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("submission_next_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("submission_claimed_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("submission_error", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_microsoft_requests_submission_next_at",
            ["submission", "submission_next_at"],
            unique=False,
        )

    with op.batch_alter_table("provider_handoffs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivery_ids", JSON, nullable=False, server_default=sa.text("'[]'"))
        )

    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audience", sa.String(length=24), nullable=False, server_default="partner")
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("audience")

    with op.batch_alter_table("provider_handoffs", schema=None) as batch_op:
        batch_op.drop_column("delivery_ids")

    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_microsoft_requests_submission_next_at")
        batch_op.drop_column("polled_at")
        batch_op.drop_column("submission_error")
        batch_op.drop_column("submission_claimed_until")
        batch_op.drop_column("submission_next_at")
        batch_op.drop_column("submission_attempts")
        batch_op.drop_column("submission")
