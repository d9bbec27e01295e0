"""an outbox row may carry a second record: the lifecycle issues.updated of its status change

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 14:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("companion_topic", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("companion_value", sa.LargeBinary(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "companion_headers",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("companion_headers")
        batch_op.drop_column("companion_value")
        batch_op.drop_column("companion_topic")
