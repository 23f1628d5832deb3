"""tenancies: when the reconciler flagged a tenancy as stuck

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenancy") as table:
        table.add_column(sa.Column("stuck_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenancy") as table:
        table.drop_column("stuck_since")
