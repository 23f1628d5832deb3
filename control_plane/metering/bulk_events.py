"""A batch of new usage events stored, rolled up and counted in one PostgreSQL statement.

The events travel as the source's own JSON (msgspec encodes the decoded request structs in
C), read by ``json_to_recordset`` with a column list; ``ON CONFLICT DO NOTHING`` on
(source, event_id) decides what is new; the new rows are summed per hour and rollup key
(the same MD5 the Python path computes, :data:`SQL_KEY`) and added to the hourly rollup in
key order (so concurrent writers lock rows in one order), and the sources' counts move in
the same statement. Only the number stored comes back. Building a Python object, a row
dictionary and a rollup key per event cost more than PostgreSQL's own work at metering
volumes; batches with amendments (rare, checked against their originals) and SQLite take
the portable path in :mod:`control_plane.metering.service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ids import new_ids
from control_plane.metering.schemas import UsageEventIn

__all__ = ["SQL_KEY", "store_new_events"]

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode

# The rollup key of a row of ``usage_hourly`` (or of anything with its columns), as
# ``RollupKey.digest`` computes it in Python.
SQL_KEY = (
    "md5(concat_ws(chr(31), org_id, project_id, type, "
    "to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\":00:00Z\"'), "
    "region, gpu_model, tenancy_kind, tenancy, endpoint, model))"
)

_STATEMENT = text(
    f"""
WITH input AS (
    SELECT * FROM ROWS FROM (
        json_to_recordset(CAST(:events AS json)) AS (
            id text, source text, org_id text, value numeric, window_start timestamptz,
            window_end timestamptz, type text, project_id text, dimensions json),
        unnest(CAST(:ids AS text[]))
    ) AS e(id, source, org_id, value, window_start, window_end, type, project_id, dimensions,
           row_id)
), inserted AS (
    INSERT INTO usage_event (id, source, event_id, org_id, project_id, type, value, dimensions,
                             window_start, window_end, recorded_at, amends_id)
    SELECT row_id, source, id, org_id, project_id, type, value, dimensions, window_start,
           window_end, :at, NULL
    FROM input
    ON CONFLICT (source, event_id) DO NOTHING
    RETURNING id
), fresh AS (
    SELECT input.* FROM input JOIN inserted ON inserted.id = input.row_id
), hourly AS (
    SELECT org_id, coalesce(project_id, '') AS project_id, type,
           date_trunc('hour', window_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
           left(coalesce(dimensions->>'region', ''), 32) AS region,
           left(coalesce(dimensions->>'gpu_model', ''), 32) AS gpu_model,
           left(coalesce(dimensions->>'tenancy_kind', ''), 20) AS tenancy_kind,
           left(coalesce(dimensions->>'tenancy', ''), 40) AS tenancy,
           left(coalesce(dimensions->>'endpoint', ''), 40) AS endpoint,
           left(coalesce(dimensions->>'model', ''), 100) AS model,
           sum(value) AS value, count(*) AS events
    FROM fresh
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
), rolled AS (
    INSERT INTO usage_hourly (key, org_id, project_id, type, hour, region, gpu_model,
                              tenancy_kind, tenancy, endpoint, model, value, events)
    SELECT {SQL_KEY}, org_id, project_id, type, hour, region, gpu_model, tenancy_kind,
           tenancy, endpoint, model, value, events
    FROM hourly
    ORDER BY 1
    ON CONFLICT (key) DO UPDATE SET value = usage_hourly.value + excluded.value,
                                    events = usage_hourly.events + excluded.events
), counted AS (
    INSERT INTO usage_source_stat (source, accepted, duplicates, amendments, rejected,
                                   last_seen_at)
    SELECT s.source, coalesce(f.stored, 0), s.sent - coalesce(f.stored, 0), 0, 0, :at
    FROM (SELECT source, count(*) AS sent FROM input GROUP BY source) s
    LEFT JOIN (SELECT source, count(*) AS stored FROM fresh GROUP BY source) f USING (source)
    ORDER BY s.source
    ON CONFLICT (source) DO UPDATE SET
        accepted = usage_source_stat.accepted + excluded.accepted,
        duplicates = usage_source_stat.duplicates + excluded.duplicates,
        last_seen_at = excluded.last_seen_at
)
SELECT count(*) FROM inserted
"""  # noqa: S608
)


async def store_new_events(db: AsyncSession, events: Sequence[UsageEventIn], at: datetime) -> int:
    """Store ``events`` (validated, none an amendment) once per (source, id), roll the new
    ones up and count them per source; returns how many were stored."""
    ids = new_ids("use", len(events))
    params = {"events": _ENCODE(events).decode(), "ids": ids, "at": at}
    return int((await db.execute(_STATEMENT, params)).scalar_one())
