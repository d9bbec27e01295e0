"""inbox records indexed by consumer and time, for forgetting a consumer's old ones

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_inbox_consumer_processed_at", "inbox", ["consumer", "processed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_consumer_processed_at", table_name="inbox")
