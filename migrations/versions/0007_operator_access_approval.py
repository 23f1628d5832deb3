"""operator access approval

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "access_request",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("operator_email", sa.String(length=254), nullable=False),
        sa.Column("operator_jurisdiction", sa.String(length=2), nullable=True),
        sa.Column("resource_type", sa.String(length=20), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("justification", sa.String(length=200), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("policy_rule", sa.String(length=80), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        _time("requested_at"),
        _time("decide_by"),
        _time("decided_at", nullable=True),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        _time("approved_at", nullable=True),
        _time("expires_at", nullable=True),
        _time("ended_at", nullable=True),
        sa.Column("ended_by", sa.String(length=80), nullable=True),
        sa.Column("review_required", sa.Boolean(), nullable=False),
        sa.Column("review_verdict", sa.String(length=20), nullable=True),
        sa.Column("review_comment", sa.String(length=2000), nullable=True),
        _time("reviewed_at", nullable=True),
        sa.Column("reviewed_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_access_request_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_request")),
    )
    op.create_index(
        op.f("ix_access_request_operator_id_id"), "access_request", ["operator_id", "id"]
    )
    op.create_index(op.f("ix_access_request_org_id_id"), "access_request", ["org_id", "id"])
    op.create_table(
        "access_notification",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        _time("created_at"),
        _time("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_access_notification_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_request.id"],
            name=op.f("fk_access_notification_request_id_access_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_notification")),
    )
    op.create_index(
        op.f("ix_access_notification_org_id_acknowledged_at"),
        "access_notification",
        ["org_id", "acknowledged_at"],
    )
    op.create_table(
        "access_use",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("resource_type", sa.String(length=20), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        _time("at"),
        sa.Column("ledger_chain", sa.String(length=80), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_request.id"],
            name=op.f("fk_access_use_request_id_access_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_use")),
    )
    op.create_index(op.f("ix_access_use_org_id_at"), "access_use", ["org_id", "at"])
    op.create_index(op.f("ix_access_use_request_id"), "access_use", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_access_use_request_id"), table_name="access_use")
    op.drop_index(op.f("ix_access_use_org_id_at"), table_name="access_use")
    op.drop_table("access_use")
    op.drop_index(
        op.f("ix_access_notification_org_id_acknowledged_at"), table_name="access_notification"
    )
    op.drop_table("access_notification")
    op.drop_index(op.f("ix_access_request_org_id_id"), table_name="access_request")
    op.drop_index(op.f("ix_access_request_operator_id_id"), table_name="access_request")
    op.drop_table("access_request")
