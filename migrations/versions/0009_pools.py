"""pools of nodes lent to organizations by weekly time windows; drain notices

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _str(name: str, length: int, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _int(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=False)


def _fk(column: str, table: str, target: str, *, cascade: bool = True) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}"], name=op.f(f"fk_{table}_{column}_{target.split('.')[0]}"),
        ondelete="CASCADE" if cascade else None,
    )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "pool",
        _str("id", 40),
        _str("region_code", 32),
        _str("name", 32),
        _str("description", 200),
        _str("timezone", 64),
        _int("drain_minutes"),
        _time("created_at"),
        _fk("region_code", "pool", "region.code", cascade=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool")),
        sa.UniqueConstraint("region_code", "name", name=op.f("uq_pool_region_code_name")),
    )
    op.create_table(
        "pool_node",
        _str("node_id", 40),
        _str("pool_id", 40),
        _fk("node_id", "pool_node", "node.id"),
        _fk("pool_id", "pool_node", "pool.id"),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_pool_node")),
    )
    op.create_index(op.f("ix_pool_node_pool_id"), "pool_node", ["pool_id"])
    op.create_table(
        "pool_window",
        _str("id", 40),
        _str("pool_id", 40),
        _str("org_id", 40),
        _str("project_id", 40, nullable=True),
        _int("days"),
        _int("start_minute"),
        _int("end_minute"),
        _time("created_at"),
        _fk("pool_id", "pool_window", "pool.id"),
        _fk("org_id", "pool_window", "organization.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_window")),
    )
    op.create_index(op.f("ix_pool_window_pool_id"), "pool_window", ["pool_id"])
    op.create_index(op.f("ix_pool_window_org_id"), "pool_window", ["org_id"])
    op.create_table(
        "pool_drain_notice",
        _str("id", 40),
        _str("pool_id", 40),
        _str("tenancy_id", 40),
        _time("switch_at"),
        _time("noticed_at"),
        _fk("pool_id", "pool_drain_notice", "pool.id"),
        _fk("tenancy_id", "pool_drain_notice", "tenancy.id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_drain_notice")),
        sa.UniqueConstraint(
            "tenancy_id", "switch_at", name=op.f("uq_pool_drain_notice_tenancy_id_switch_at")
        ),
    )
    op.create_index(op.f("ix_pool_drain_notice_pool_id"), "pool_drain_notice", ["pool_id"])


def downgrade() -> None:
    op.drop_table("pool_drain_notice")
    op.drop_table("pool_window")
    op.drop_table("pool_node")
    op.drop_table("pool")
