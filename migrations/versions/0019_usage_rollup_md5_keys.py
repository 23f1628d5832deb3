"""metering: the hourly rollup's key becomes an MD5 PostgreSQL can compute itself (a batch of
new events is then stored and rolled up in one statement); existing keys are recomputed

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 00:10:00
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("org_id", "project_id", "type", "hour", "region", "gpu_model", "tenancy_kind",
            "tenancy", "endpoint", "model")  # fmt: skip


def _hour(value: object) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _md5(row: Sequence[object]) -> str:
    org, project, kind, hour, *dims = tuple(row)[1:]
    text = "\x1f".join([str(org), str(project), str(kind),
                        _hour(hour).strftime("%Y-%m-%dT%H:00:00Z"), *map(str, dims)])  # fmt: skip
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _blake2b(row: Sequence[object]) -> str:
    org, project, kind, hour, *dims = tuple(row)[1:]
    text = "\x1f".join([str(org), str(project), str(kind), _hour(hour).isoformat(),
                        *map(str, dims)])  # fmt: skip
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _rekey(digest: Callable[[Sequence[object]], str]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and digest is _md5:
        bind.execute(sa.text(
            "UPDATE usage_hourly SET key = md5(concat_ws(chr(31), org_id, project_id, type, "
            "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\":00:00Z\"'), region, "
            "gpu_model, tenancy_kind, tenancy, endpoint, model))"
        ))  # fmt: skip
        return
    rows = bind.execute(sa.text(f"SELECT key, {', '.join(_COLUMNS)} FROM usage_hourly")).all()  # noqa: S608
    update = sa.text("UPDATE usage_hourly SET key = :new WHERE key = :old")
    for row in rows:
        bind.execute(update, {"new": digest(tuple(row)), "old": row[0]})


def upgrade() -> None:
    _rekey(_md5)


def downgrade() -> None:
    _rekey(_blake2b)
