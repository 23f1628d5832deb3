"""residency policies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A stored policy version is never edited: a change inserts the next version. PostgreSQL
# refuses UPDATE whoever issues it; DELETE stays possible so deleting an organization
# cascades. SQLite has no such guard: the application has no code path that updates one.
_REFUSE_UPDATE_FUNCTION = """
CREATE FUNCTION residency_policy_version_refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'residency_policy_version is immutable: UPDATE refused';
END;
$$
"""
_REFUSE_UPDATE_TRIGGER = """
CREATE TRIGGER residency_policy_version_immutable
BEFORE UPDATE ON residency_policy_version
FOR EACH ROW EXECUTE FUNCTION residency_policy_version_refuse_update()
"""


def upgrade() -> None:
    op.create_table(
        "residency_policy_version",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("classification", sa.String(length=100), nullable=False),
        sa.Column("unrestricted", sa.Boolean(), nullable=False),
        sa.Column("allowed_jurisdictions", sa.JSON(), nullable=False),
        sa.Column("allowed_regions", sa.JSON(), nullable=False),
        sa.Column("allowed_groups", sa.JSON(), nullable=False),
        sa.Column("keys_in_region", sa.Boolean(), nullable=False),
        sa.Column("cross_border_export", sa.Boolean(), nullable=False),
        sa.Column("operator_jurisdictions", sa.JSON(), nullable=False),
        sa.Column("template", sa.String(length=40), nullable=True),
        sa.Column("changed_by_kind", sa.String(length=20), nullable=False),
        sa.Column("changed_by_id", sa.String(length=80), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("flagged", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_residency_policy_version_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residency_policy_version")),
        sa.UniqueConstraint(
            "org_id", "version", name=op.f("uq_residency_policy_version_org_id_version")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE_UPDATE_FUNCTION)
        op.execute(_REFUSE_UPDATE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER IF EXISTS residency_policy_version_immutable ON residency_policy_version"
        )
        op.execute("DROP FUNCTION IF EXISTS residency_policy_version_refuse_update()")
    op.drop_table("residency_policy_version")
