"""outage correlation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 06:00:42.600859
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "correlation_keys",
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("service_key", sa.String(length=128), nullable=False),
        sa.Column("region_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_correlation_keys_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(
            "partner_id", "service_key", "region_key", name=op.f("pk_correlation_keys")
        ),
    )
    op.create_table(
        "outage_clusters",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("service_key", sa.String(length=128), nullable=False),
        sa.Column("region_key", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tenants", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_outage_clusters_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outage_clusters")),
    )
    with op.batch_alter_table("outage_clusters", schema=None) as batch_op:
        batch_op.create_index(
            "uq_outage_clusters_open_key",
            ["partner_id", "service_key", "region_key"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "cluster_signals",
        sa.Column("issue_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("service_key", sa.String(length=128), nullable=False),
        sa.Column("region_key", sa.String(length=64), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["outage_clusters.id"],
            name=op.f("fk_cluster_signals_cluster_id_outage_clusters"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_cluster_signals_issue_id_issues")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_cluster_signals_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("issue_id", name=op.f("pk_cluster_signals")),
    )
    with op.batch_alter_table("cluster_signals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_signals_cluster_id"), ["cluster_id"], unique=False
        )
        batch_op.create_index(
            "ix_cluster_signals_key_observed",
            ["partner_id", "service_key", "region_key", "observed_at"],
            unique=False,
        )

    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("superseded_by_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_microsoft_requests_superseded_by_id_microsoft_requests"),
            "microsoft_requests",
            ["superseded_by_id"],
            ["id"],
        )


def downgrade() -> None:

    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_microsoft_requests_superseded_by_id_microsoft_requests"),
            type_="foreignkey",
        )
        batch_op.drop_column("superseded_by_id")

    with op.batch_alter_table("cluster_signals", schema=None) as batch_op:
        batch_op.drop_index("ix_cluster_signals_key_observed")
        batch_op.drop_index(batch_op.f("ix_cluster_signals_cluster_id"))

    op.drop_table("cluster_signals")
    with op.batch_alter_table("outage_clusters", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_outage_clusters_open_key",
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.drop_table("outage_clusters")
    op.drop_table("correlation_keys")
