"""metering: usage events lose their (org_id, window_start) index (queries read the hourly
rollup; one index less to maintain on every event ingested)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_usage_event_org_id_window_start", table_name="usage_event")


def downgrade() -> None:
    op.create_index("ix_usage_event_org_id_window_start", "usage_event", ["org_id", "window_start"])
