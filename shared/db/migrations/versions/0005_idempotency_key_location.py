"""idempotency key location; timeline notes of any length; incidents scoped per partner

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 07:17:42.767550
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("location", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)
    with op.batch_alter_table("issue_events", schema=None) as batch_op:
        batch_op.alter_column(
            "detail", existing_type=sa.String(length=500), type_=sa.Text(), existing_nullable=False
        )

    # Incidents recorded through the API belong to their partner; the topic's are global.
    with op.batch_alter_table("health_incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=40), nullable=False, server_default="*")
        )
    op.execute(
        "UPDATE health_incidents SET scope = CAST(partner_id AS VARCHAR(40)) "
        "WHERE partner_id IS NOT NULL"
    )
    with op.batch_alter_table("health_incidents", schema=None) as batch_op:
        batch_op.drop_constraint("pk_health_incidents", type_="primary")
        batch_op.create_primary_key("pk_health_incidents", ["scope", "id"])


def downgrade() -> None:
    # The old key holds one row per incident id: keep the global one, else the first scope.
    op.execute(
        "DELETE FROM health_incidents WHERE scope <> (SELECT MIN(g.scope) "
        "FROM health_incidents AS g WHERE g.id = health_incidents.id)"
    )
    with op.batch_alter_table("health_incidents", schema=None) as batch_op:
        batch_op.drop_constraint("pk_health_incidents", type_="primary")
        batch_op.create_primary_key("pk_health_incidents", ["id"])
        batch_op.drop_column("scope")
    with op.batch_alter_table("issue_events", schema=None) as batch_op:
        batch_op.alter_column(
            "detail",
            existing_type=sa.Text(),
            type_=sa.String(length=500),
            existing_nullable=False,
            postgresql_using="left(detail, 500)",
        )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")
        batch_op.drop_column("location")
