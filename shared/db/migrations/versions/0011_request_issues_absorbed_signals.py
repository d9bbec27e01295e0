"""a Microsoft request's issues become rows; cluster signals say whether they were absorbed

A cluster's request kept its members in one ``issue_ids`` list, rewritten with every member
that joined, and every member's absorb read the whole cluster again: in an outage storm, work
that grew with the square of the cluster. Now each member is a row of
``microsoft_request_issues``, and ``cluster_signals.absorbed`` says which members the
notifier has still to look at. A cluster's tenants are counted as they join, through an index
on (cluster, tenant) that replaces the one on the cluster alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:30:00.000000
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_UNABSORBED = sa.text("cluster_id IS NOT NULL AND NOT absorbed")
_requests = sa.table(
    "microsoft_requests", sa.column("id", sa.Uuid()), sa.column("issue_ids", _JSON)
)
_members = sa.table(
    "microsoft_request_issues",
    sa.column("request_id", sa.Uuid()),
    sa.column("issue_id", sa.Uuid()),
)


def upgrade() -> None:
    op.create_table(
        "microsoft_request_issues",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("issue_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_microsoft_request_issues_issue_id_issues")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["microsoft_requests.id"],
            name=op.f("fk_microsoft_request_issues_request_id_microsoft_requests"),
        ),
        sa.PrimaryKeyConstraint("request_id", "issue_id", name=op.f("pk_microsoft_request_issues")),
    )
    connection = op.get_bind()
    rows = [
        {"request_id": request_id, "issue_id": uuid.UUID(issue_id)}
        for request_id, issue_ids in connection.execute(sa.select(_requests))
        for issue_id in sorted(set(issue_ids or ()))
    ]
    if rows:
        connection.execute(sa.insert(_members), rows)
    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.drop_column("issue_ids")

    with op.batch_alter_table("cluster_signals", schema=None) as batch_op:
        # Every member of a cluster is looked at once more: folding in is idempotent.
        batch_op.add_column(
            sa.Column("absorbed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.drop_index("ix_cluster_signals_cluster_id")
        batch_op.create_index(
            "ix_cluster_signals_cluster_tenant", ["cluster_id", "tenant_key"], unique=False
        )
        batch_op.create_index(
            "ix_cluster_signals_unabsorbed",
            ["cluster_id"],
            unique=False,
            postgresql_where=_UNABSORBED,
            sqlite_where=_UNABSORBED,
        )


def downgrade() -> None:
    with op.batch_alter_table("cluster_signals", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_cluster_signals_unabsorbed",
            postgresql_where=_UNABSORBED,
            sqlite_where=_UNABSORBED,
        )
        batch_op.drop_index("ix_cluster_signals_cluster_tenant")
        batch_op.create_index("ix_cluster_signals_cluster_id", ["cluster_id"], unique=False)
        batch_op.drop_column("absorbed")

    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("issue_ids", _JSON, server_default=sa.text("'[]'"), nullable=False)
        )
    connection = op.get_bind()
    members: dict[uuid.UUID, list[str]] = {}
    for request_id, issue_id in connection.execute(sa.select(_members)):
        members.setdefault(request_id, []).append(str(issue_id))
    for request_id, issue_ids in members.items():
        connection.execute(
            sa.update(_requests)
            .where(_requests.c.id == request_id)
            .values(issue_ids=sorted(issue_ids))
        )
    with op.batch_alter_table("microsoft_requests", schema=None) as batch_op:
        batch_op.alter_column("issue_ids", server_default=None)
    op.drop_table("microsoft_request_issues")
