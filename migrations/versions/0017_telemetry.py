"""telemetry: node agent credentials, raw GPU samples, received batches, dirty hours, hourly
GPU rollups; regions get a time zone (local night and day in utilization reports)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 22:58:01.443989
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gpu_hour",
        sa.Column("gpu_id", sa.String(length=40), nullable=False),
        sa.Column("hour", _TZ, nullable=False),
        sa.Column("tenancy_id", sa.String(length=40), nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=32), nullable=False),
        sa.Column("gpu_model_code", sa.String(length=32), nullable=False),
        sa.Column("local_hour", sa.SmallInteger(), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=True),
        sa.Column("endpoint_id", sa.String(length=40), nullable=True),
        sa.Column("share_milli", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("util_mean", sa.Float(), nullable=False),
        sa.Column("util_p95", sa.Float(), nullable=False),
        sa.Column("util_max", sa.Float(), nullable=False),
        sa.Column("mem_mean_mib", sa.Integer(), nullable=False),
        sa.Column("mem_p95_mib", sa.Integer(), nullable=False),
        sa.Column("mem_max_mib", sa.Integer(), nullable=False),
        sa.Column("mem_total_mib", sa.Integer(), nullable=False),
        sa.Column("power_mean_w", sa.Float(), nullable=False),
        sa.Column("energy_wh", sa.Float(), nullable=False),
        sa.Column("proc_max", sa.SmallInteger(), nullable=False),
        sa.Column("ecc_errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("gpu_id", "hour", "tenancy_id", name=op.f("pk_gpu_hour")),
    )
    with op.batch_alter_table("gpu_hour", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gpu_hour_org_id_hour"), ["org_id", "hour"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gpu_hour_region_code_hour"), ["region_code", "hour"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gpu_hour_tenancy_id_hour"), ["tenancy_id", "hour"], unique=False
        )

    op.create_table(
        "gpu_sample",
        sa.Column("gpu_id", sa.String(length=40), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("sm_util", sa.SmallInteger(), nullable=False),
        sa.Column("mem_util", sa.SmallInteger(), nullable=False),
        sa.Column("mem_used_mib", sa.Integer(), nullable=False),
        sa.Column("mem_total_mib", sa.Integer(), nullable=False),
        sa.Column("power_w", sa.Float(), nullable=False),
        sa.Column("temp_c", sa.SmallInteger(), nullable=False),
        sa.Column("sm_clock_mhz", sa.Integer(), nullable=False),
        sa.Column("mem_clock_mhz", sa.Integer(), nullable=False),
        sa.Column("ecc_corrected", sa.Integer(), nullable=True),
        sa.Column("ecc_uncorrected", sa.Integer(), nullable=True),
        sa.Column("proc_count", sa.SmallInteger(), nullable=False),
        sa.Column("processes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("gpu_id", "at", name=op.f("pk_gpu_sample")),
    )
    op.create_table(
        "telemetry_batch",
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", _TZ, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "batch_id", name=op.f("pk_telemetry_batch")),
    )
    with op.batch_alter_table("telemetry_batch", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telemetry_batch_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "telemetry_dirty_hour",
        sa.Column("gpu_id", sa.String(length=40), nullable=False),
        sa.Column("hour", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("gpu_id", "hour", name=op.f("pk_telemetry_dirty_hour")),
    )
    op.create_table(
        "node_credential",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.Column("last_used_at", _TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["node.id"],
            name=op.f("fk_node_credential_node_id_node"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_credential")),
        sa.UniqueConstraint("prefix", name=op.f("uq_node_credential_prefix")),
    )
    with op.batch_alter_table("node_credential", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_credential_node_id"), ["node_id"], unique=False)

    with op.batch_alter_table("region", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("region", schema=None) as batch_op:
        batch_op.drop_column("timezone")

    with op.batch_alter_table("node_credential", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_credential_node_id"))

    op.drop_table("node_credential")
    op.drop_table("telemetry_dirty_hour")
    with op.batch_alter_table("telemetry_batch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telemetry_batch_received_at"))

    op.drop_table("telemetry_batch")
    op.drop_table("gpu_sample")
    with op.batch_alter_table("gpu_hour", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gpu_hour_tenancy_id_hour"))
        batch_op.drop_index(batch_op.f("ix_gpu_hour_region_code_hour"))
        batch_op.drop_index(batch_op.f("ix_gpu_hour_org_id_hour"))

    op.drop_table("gpu_hour")
