"""Usage is stored once per (source, id): a producer's retry is counted as a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.metering.service import NewUsage, record_usage, usage_total

START = datetime(2026, 12, 1, 10, tzinfo=UTC)


def usage(event_id: str, seconds: str, source: str = "tenancies") -> NewUsage:
    return NewUsage(
        source=source, event_id=event_id, org_id="org_meter", project_id=None,
        type="gpu_seconds", value=Decimal(seconds), window_start=START,
        window_end=START + timedelta(hours=1), dimensions={"gpu_model": "h100"},
    )  # fmt: skip


class TestRecordUsage:
    async def test_duplicates_are_counted_and_not_stored_twice(self, db: AsyncSession) -> None:
        first = await record_usage(db, [usage("a", "3600"), usage("b", "1800")], START)
        again = await record_usage(db, [usage("a", "3600"), usage("c", "60")], START)
        other_source = await record_usage(db, [usage("a", "10", source="gateway")], START)
        await db.commit()

        assert (first, again, other_source) == (0, 1, 0)
        total = await usage_total(db, org_id="org_meter", type="gpu_seconds")
        assert total == Decimal("5470")  # 3600 + 1800 + 60 + 10
        by_model = await usage_total(
            db, org_id="org_meter", type="gpu_seconds", dimension=("gpu_model", "h100")
        )
        assert by_model == total
