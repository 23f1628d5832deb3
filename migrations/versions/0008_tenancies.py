"""tenancies, GPU claims and allocations, shapes, quotas; usage events

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _int(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenancy",
        _str("id", 40),
        _str("org_id", 40),
        _str("project_id", 40, nullable=True),
        _str("name", 63),
        sa.Column("labels", sa.JSON(), nullable=False),
        _str("kind", 20),
        _str("region_code", 32),
        _str("gpu_model_code", 32),
        _str("shape", 40, nullable=True),
        _int("node_count"),
        _int("gpus_per_node"),
        _int("gpu_milli"),
        _str("image", 200, nullable=True),
        sa.Column("ssh_public_keys", sa.JSON(), nullable=False),
        _time("ends_at", nullable=True),
        _int("idle_release_minutes", nullable=True),
        _str("state", 20),
        _str("failure_reason", 500, nullable=True),
        _str("driver", 40),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        _int("generation"),
        _int("applied_generation"),
        _str("lease_token", 40, nullable=True),
        _time("lease_expires_at", nullable=True),
        _time("next_attempt_at", nullable=True),
        _int("attempts"),
        _str("last_error", 500, nullable=True),
        _str("created_by", 80),
        _time("created_at"),
        _time("state_changed_at"),
        _time("activated_at", nullable=True),
        _time("release_requested_at", nullable=True),
        _time("released_at", nullable=True),
        _time("accrued_until", nullable=True),
        _time("idle_since", nullable=True),
        sa.Column("expiry_warned", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_tenancy_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_tenancy_region_code_region")
        ),
        sa.ForeignKeyConstraint(
            ["gpu_model_code"], ["gpu_model.code"],
            name=op.f("fk_tenancy_gpu_model_code_gpu_model"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenancy")),
    )  # fmt: skip
    op.create_index(op.f("ix_tenancy_org_id_id"), "tenancy", ["org_id", "id"])
    op.create_index(
        op.f("ix_tenancy_state_next_attempt_at"), "tenancy", ["state", "next_attempt_at"]
    )

    op.create_table(
        "tenancy_event",
        _str("id", 40),
        _str("tenancy_id", 40),
        _time("at"),
        _str("kind", 20),
        _str("from_state", 20, nullable=True),
        _str("to_state", 20, nullable=True),
        _str("detail", 1000),
        _str("actor", 80),
        sa.ForeignKeyConstraint(
            ["tenancy_id"], ["tenancy.id"], name=op.f("fk_tenancy_event_tenancy_id_tenancy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenancy_event")),
    )  # fmt: skip
    op.create_index(op.f("ix_tenancy_event_tenancy_id_at"), "tenancy_event", ["tenancy_id", "at"])

    op.create_table(
        "gpu_claim",
        _str("gpu_id", 40),
        _str("node_id", 40),
        _int("used_milli"),
        sa.CheckConstraint(
            "used_milli >= 0 AND used_milli <= 1000", name=op.f("ck_gpu_claim_used_milli_range")
        ),
        sa.ForeignKeyConstraint(
            ["gpu_id"], ["gpu.id"], name=op.f("fk_gpu_claim_gpu_id_gpu"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["node.id"], name=op.f("fk_gpu_claim_node_id_node"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("gpu_id", name=op.f("pk_gpu_claim")),
    )
    op.create_index(op.f("ix_gpu_claim_node_id"), "gpu_claim", ["node_id"])

    op.create_table(
        "gpu_allocation",
        _str("id", 40),
        _str("tenancy_id", 40),
        _str("node_id", 40),
        _str("gpu_id", 40),
        _int("gpu_index"),
        _int("milli"),
        _time("allocated_at"),
        _time("released_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["tenancy_id"], ["tenancy.id"], name=op.f("fk_gpu_allocation_tenancy_id_tenancy"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["node.id"], name=op.f("fk_gpu_allocation_node_id_node")
        ),
        sa.ForeignKeyConstraint(["gpu_id"], ["gpu.id"], name=op.f("fk_gpu_allocation_gpu_id_gpu")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_allocation")),
    )  # fmt: skip
    op.create_index(op.f("ix_gpu_allocation_tenancy_id"), "gpu_allocation", ["tenancy_id"])
    op.create_index(
        "uq_gpu_allocation_live_whole_gpu",
        "gpu_allocation",
        ["gpu_id"],
        unique=True,
        sqlite_where=sa.text("released_at IS NULL AND milli = 1000"),
        postgresql_where=sa.text("released_at IS NULL AND milli = 1000"),
    )

    op.create_table(
        "shape",
        _str("id", 40),
        _str("region_code", 32),
        _str("name", 40),
        _str("description", 200),
        _str("gpu_model_code", 32),
        _int("gpus_per_node"),
        _int("node_count"),
        _int("gpu_milli"),
        _str("interconnect", 20),
        sa.Column("hourly_price", sa.Numeric(12, 4), nullable=False),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_shape_region_code_region")
        ),
        sa.ForeignKeyConstraint(
            ["gpu_model_code"], ["gpu_model.code"], name=op.f("fk_shape_gpu_model_code_gpu_model")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shape")),
        sa.UniqueConstraint("region_code", "name", name=op.f("uq_shape_region_code_name")),
    )

    op.create_table(
        "gpu_quota",
        _str("id", 40),
        _str("org_id", 40),
        _str("region_code", 32),
        _str("gpu_model_code", 32),
        _int("max_gpus"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_quota")),
        sa.UniqueConstraint(
            "org_id", "region_code", "gpu_model_code",
            name=op.f("uq_gpu_quota_org_id_region_code_gpu_model_code"),
        ),
    )  # fmt: skip

    op.create_table(
        "tenancy_org_lock",
        _str("org_id", 40),
        _time("touched_at"),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_tenancy_org_lock")),
    )

    op.create_table(
        "usage_event",
        _str("id", 40),
        _str("source", 80),
        _str("event_id", 200),
        _str("org_id", 40),
        _str("project_id", 40, nullable=True),
        _str("type", 40),
        sa.Column("value", sa.Numeric(20, 6), nullable=False),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        _time("window_start"),
        _time("window_end"),
        _time("recorded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_event")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_usage_event_source_event_id")),
    )
    op.create_index(
        op.f("ix_usage_event_org_id_window_start"), "usage_event", ["org_id", "window_start"]
    )


def downgrade() -> None:
    op.drop_table("usage_event")
    op.drop_table("tenancy_org_lock")
    op.drop_table("gpu_quota")
    op.drop_table("shape")
    op.drop_index("uq_gpu_allocation_live_whole_gpu", table_name="gpu_allocation")
    op.drop_table("gpu_allocation")
    op.drop_table("gpu_claim")
    op.drop_table("tenancy_event")
    op.drop_table("tenancy")
