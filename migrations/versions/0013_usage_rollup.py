"""metering: amendments on usage events, the hourly usage rollup, per-source counts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 00:30:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)
_DIMENSIONS = ("region", "gpu_model", "tenancy_kind", "tenancy", "endpoint", "model")
_WIDTH = (32, 32, 20, 40, 40, 100)


def upgrade() -> None:
    with op.batch_alter_table("usage_event") as table:
        table.add_column(sa.Column("amends_id", sa.String(40), nullable=True))
        table.create_index(
            "ix_usage_event_amends_id",
            ["amends_id"],
            postgresql_where=sa.text("amends_id IS NOT NULL"),
            sqlite_where=sa.text("amends_id IS NOT NULL"),
        )
    op.create_table(
        "usage_hourly",
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(40), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("hour", _TZ, nullable=False),
        *(sa.Column(name, sa.String(width), nullable=False)
          for name, width in zip(_DIMENSIONS, _WIDTH, strict=True)),
        sa.Column("value", sa.Numeric(24, 6), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_usage_hourly")),
    )  # fmt: skip
    op.create_index(op.f("ix_usage_hourly_org_id_hour"), "usage_hourly", ["org_id", "hour"])
    op.create_table(
        "usage_source_stat",
        sa.Column("source", sa.String(80), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False)
          for name in ("accepted", "duplicates", "amendments", "rejected")),
        sa.Column("last_seen_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_usage_source_stat")),
    )  # fmt: skip
    _backfill()


def _backfill() -> None:
    """Roll up the events stored before this revision (same keys as the application)."""
    bind = op.get_bind()
    events = sa.table(
        "usage_event", sa.column("org_id"), sa.column("project_id"), sa.column("type"),
        sa.column("value"), sa.column("dimensions", sa.JSON()), sa.column("window_start", _TZ),
    )  # fmt: skip
    rows: dict[str, dict[str, object]] = {}
    sums: dict[str, tuple[Decimal, int]] = {}
    for org, project, kind, value, dims, start in bind.execute(sa.select(events)):
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        values = tuple(
            str((dims or {}).get(d, ""))[:w] for d, w in zip(_DIMENSIONS, _WIDTH, strict=True)
        )
        text = "\x1f".join((org, project or "", kind, hour.isoformat(), *values))
        key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        rows.setdefault(key, {
            "key": key, "org_id": org, "project_id": project or "", "type": kind,
            "hour": hour if bind.dialect.name != "sqlite" else hour.replace(tzinfo=None),
            **dict(zip(_DIMENSIONS, values, strict=True)),
        })  # fmt: skip
        total, count = sums.get(key, (Decimal(0), 0))
        sums[key] = (total + Decimal(str(value)), count + 1)
    for key, (total, count) in sums.items():
        rows[key].update(value=total, events=count)
    if rows:
        hourly = sa.table("usage_hourly", *(sa.column(c) for c in next(iter(rows.values()))))
        bind.execute(hourly.insert(), list(rows.values()))


def downgrade() -> None:
    op.drop_table("usage_source_stat")
    op.drop_index(op.f("ix_usage_hourly_org_id_hour"), table_name="usage_hourly")
    op.drop_table("usage_hourly")
    with op.batch_alter_table("usage_event") as table:
        table.drop_index("ix_usage_event_amends_id")
        table.drop_column("amends_id")
