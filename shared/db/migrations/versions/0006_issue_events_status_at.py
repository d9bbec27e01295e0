"""issue timeline steps indexed by status and time, for the ops page's latest routed issues

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 09:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_issue_events_status_at", "issue_events", ["status", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_issue_events_status_at", table_name="issue_events")
