"""The hourly rollup: which columns an event's dimensions fill, and the upsert that adds
stored events to it (in the storing transaction, so queries see them at once)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.bulk import upsert
from control_plane.metering.models import UsageHourly

__all__ = ["DIMENSIONS", "RollupKey", "add_to_rollup", "rollup_key"]

# Dimensions the rollup keeps (and usage can be grouped or filtered by); any other
# dimension an event carries (an API key, a request count) stays on the event only.
DIMENSIONS = ("region", "gpu_model", "tenancy_kind", "tenancy", "endpoint", "model")
_WIDTH = {"region": 32, "gpu_model": 32, "tenancy_kind": 20, "tenancy": 40, "endpoint": 40,
          "model": 100}  # fmt: skip
_WIDTHS = tuple(_WIDTH[d] for d in DIMENSIONS)
_NARROWEST = min(_WIDTHS)


@dataclass(frozen=True, slots=True)
class RollupKey:
    org_id: str
    project_id: str
    type: str
    hour: datetime
    dims: tuple[str, ...]  # in DIMENSIONS order, "" when absent

    @property
    def digest(self) -> str:
        """MD5 (an identifier, not a secret) of the key's columns joined by U+001F, the hour
        as ``YYYY-MM-DDTHH:00:00Z``: PostgreSQL computes the same with ``md5()`` when it
        rolls a batch up by itself (:data:`control_plane.metering.bulk_events.SQL_KEY`)."""
        text = "\x1f".join((self.org_id, self.project_id, self.type,
                            self.hour.strftime("%Y-%m-%dT%H:00:00Z"), *self.dims))  # fmt: skip
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@functools.lru_cache(maxsize=4096)
def hour_of(at: datetime) -> datetime:
    """The UTC hour ``at`` falls in (cached: a batch's events share a few window starts)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rollup_key(
    org_id: str, project_id: str | None, type: str, at: datetime, dims: Mapping[str, str]
) -> RollupKey:
    get = dims.get
    values: tuple[str, ...] = (
        get("region", ""),
        get("gpu_model", ""),
        get("tenancy_kind", ""),
        get("tenancy", ""),
        get("endpoint", ""),
        get("model", ""),
    )
    if max(map(len, values)) > _NARROWEST:  # rare: only then check each width
        values = tuple(v[:w] for v, w in zip(values, _WIDTHS, strict=True))
    return RollupKey(org_id, project_id or "", type, hour_of(at), values)  # fmt: skip


async def add_to_rollup(db: AsyncSession, amounts: Iterable[tuple[RollupKey, Decimal]]) -> None:
    """Add ``amounts`` to the rollup (rows created as needed), in the caller's transaction.

    Keys are summed first and written in a fixed order, so one statement never touches a
    row twice and two concurrent writers lock rows in the same order (no deadlock).
    """
    totals: dict[RollupKey, list[Any]] = {}
    for key, value in amounts:
        entry = totals.get(key)
        if entry is None:
            totals[key] = [value, 1]
        else:
            entry[0] += value
            entry[1] += 1
    if not totals:
        return
    rows = []
    for digest, key in sorted((k.digest, k) for k in totals):
        value, count = totals[key]
        region, gpu_model, tenancy_kind, tenancy, endpoint, model = key.dims
        rows.append(
            {
                "key": digest,
                "org_id": key.org_id,
                "project_id": key.project_id,
                "type": key.type,
                "hour": key.hour,
                "region": region,
                "gpu_model": gpu_model,
                "tenancy_kind": tenancy_kind,
                "tenancy": tenancy,
                "endpoint": endpoint,
                "model": model,
                "value": value,
                "events": count,
            }
        )
    table = cast(Table, UsageHourly.__table__)
    await upsert(db, table, rows, conflict=("key",), add=("value", "events"))
