"""inference endpoints: endpoints, model versions, their timeline, model governance; tenancies
managed by another domain (an endpoint's replicas) with the workload they run

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("tenancy") as table:
        table.add_column(sa.Column("managed_by", sa.String(60), nullable=True))
        table.add_column(sa.Column("workload", sa.JSON(), nullable=False, server_default="{}"))
        table.create_index("ix_tenancy_managed_by", ["managed_by"])
    with op.batch_alter_table("tenancy") as table:
        table.alter_column("workload", server_default=None)

    op.create_table(
        "endpoint",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "org_id",
            sa.String(40),
            sa.ForeignKey("organization.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.String(40), nullable=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("region_code", sa.String(32), sa.ForeignKey("region.code"), nullable=False),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("gpu_model_code", sa.String(32), sa.ForeignKey("gpu_model.code"), nullable=False),
        sa.Column("gpus_per_replica", sa.Integer(), nullable=False),
        sa.Column("gpu_milli", sa.Integer(), nullable=False),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("desired_replicas", sa.Integer(), nullable=False),
        sa.Column("target_tokens_per_s", sa.Integer(), nullable=False),
        sa.Column("target_queue_per_replica", sa.Integer(), nullable=False),
        sa.Column("scale_to_zero_after_s", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.Column("deleted_at", _TZ, nullable=True),
    )
    op.create_index("ix_endpoint_org_id_id", "endpoint", ["org_id", "id"])
    op.create_index(
        "uq_endpoint_live_name",
        "endpoint",
        ["org_id", "name"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )

    op.create_table(
        "endpoint_version",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.String(40),
            sa.ForeignKey("endpoint.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source_uri", sa.String(500), nullable=False),
        sa.Column("store_region", sa.String(32), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("license", sa.String(100), nullable=False),
        sa.Column("served_model", sa.String(120), nullable=False),
        sa.Column("approval", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(80), nullable=True),
        sa.Column("decided_at", _TZ, nullable=True),
        sa.Column("decision_note", sa.String(500), nullable=True),
        sa.Column("traffic_percent", sa.Integer(), nullable=False),
        sa.Column("io", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("retired_at", _TZ, nullable=True),
    )
    op.create_index(
        "ix_endpoint_version_endpoint_id_number",
        "endpoint_version",
        ["endpoint_id", "number"],
        unique=True,
    )

    op.create_table(
        "endpoint_event",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.String(40),
            sa.ForeignKey("endpoint.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
    )
    op.create_index("ix_endpoint_event_endpoint_id_at", "endpoint_event", ["endpoint_id", "at"])

    op.create_table(
        "model_governance",
        sa.Column(
            "org_id",
            sa.String(40),
            sa.ForeignKey("organization.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("require_approval", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_governance")
    op.drop_table("endpoint_event")
    op.drop_table("endpoint_version")
    op.drop_index("uq_endpoint_live_name", table_name="endpoint")
    op.drop_table("endpoint")
    with op.batch_alter_table("tenancy") as table:
        table.drop_index("ix_tenancy_managed_by")
        table.drop_column("workload")
        table.drop_column("managed_by")
