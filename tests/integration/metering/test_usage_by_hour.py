"""Usage per hour for charts: bucketed by window start, filtered by type, organization,
time range and an optional dimension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.metering.service import NewUsage, record_usage, usage_by_hour

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def tokens(event_id: str, kind: str, n: int, minutes: int, endpoint: str = "ep_a",
           org_id: str = "org_hour") -> NewUsage:  # fmt: skip
    at = START + timedelta(minutes=minutes)
    return NewUsage(
        source="gateway", event_id=event_id, org_id=org_id, project_id=None, type=kind,
        value=Decimal(n), window_start=at, window_end=at + timedelta(minutes=1),
        dimensions={"endpoint": endpoint},
    )  # fmt: skip


async def test_usage_is_summed_per_hour_of_its_window(db: AsyncSession) -> None:
    events = [
        tokens("1", "tokens_in", 10, 5),
        tokens("2", "tokens_in", 5, 50),
        tokens("3", "tokens_out", 7, 65),
        tokens("4", "tokens_out", 100, 70, endpoint="ep_b"),
        tokens("5", "tokens_in", 1000, 10, org_id="org_other"),
        tokens("6", "gpu_seconds", 3600, 10),
        tokens("7", "tokens_in", 99, -30),  # before the range
    ]
    await record_usage(db, events, START)
    await db.commit()
    until = START + timedelta(hours=3)

    everything = await usage_by_hour(
        db, "org_hour", ["tokens_in", "tokens_out"], START + timedelta(minutes=20), until
    )
    only_a = await usage_by_hour(
        db, "org_hour", ["tokens_in", "tokens_out"], START, until, ("endpoint", "ep_a")
    )

    assert everything.hours == [START + timedelta(hours=n) for n in range(3)]
    assert everything.values == {
        "tokens_in": [Decimal(15), Decimal(0), Decimal(0)],
        "tokens_out": [Decimal(0), Decimal(107), Decimal(0)],
    }
    assert only_a.values["tokens_out"] == [Decimal(0), Decimal(7), Decimal(0)]
