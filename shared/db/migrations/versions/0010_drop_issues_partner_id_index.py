"""issues lose the index on partner_id alone: the unique (partner_id, external_ref) one covers it

Every issue written or moved kept both up to date.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_issues_partner_id", table_name="issues")


def downgrade() -> None:
    op.create_index("ix_issues_partner_id", "issues", ["partner_id"], unique=False)
