"""identity: an API key's own inference gateway limits (requests/s, tokens/min)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_key") as table:
        table.add_column(sa.Column("requests_per_second", sa.Float(), nullable=True))
        table.add_column(sa.Column("tokens_per_minute", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_key") as table:
        table.drop_column("tokens_per_minute")
        table.drop_column("requests_per_second")
