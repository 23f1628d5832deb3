"""A batch ingested in one statement (PostgreSQL) and usage recorded by the control plane's
own producers (tenancies, the gateway) land on the same hourly rollup rows: the key SQL
computes is the key Python computes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.metering.ingest import IngestRules, ingest
from control_plane.metering.models import UsageHourly, UsageSourceStat
from control_plane.metering.schemas import UsageEventIn
from control_plane.metering.service import NewUsage, record_usage
from tests.fixtures.factories import make_org

DIMS = {"region": "ca-qc-1", "gpu_model": "h100", "tenancy_kind": "slurm", "tenancy": "ten_k",
        "api_key": "not rolled up"}  # fmt: skip


class TestRollupKeys:
    async def test_ingest_and_producers_add_to_the_same_rows(
        self, db: AsyncSession, clock: OffsetClock
    ) -> None:
        org = await make_org(db)
        await db.commit()
        hour = clock.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        start = hour - timedelta(hours=2) + timedelta(minutes=5)
        events = [
            UsageEventIn(id=f"e{i}", source="partner", org_id=org.org_id,
                         value=Decimal("1800.5"), window_start=start,
                         window_end=start + timedelta(minutes=30), type="gpu_seconds",
                         dimensions=DIMS)
            for i in range(3)
        ]  # fmt: skip
        events.append(events[0])  # a retry inside the batch

        result = await ingest(db, events, IngestRules(late=timedelta(hours=72)), clock.now())
        await record_usage(db, [NewUsage(
            source="tenancies", event_id="acc-1", org_id=org.org_id, project_id=None,
            type="gpu_seconds", value=Decimal("99.5"), window_start=start,
            window_end=start + timedelta(minutes=1), dimensions=DIMS,
        )], clock.now())  # fmt: skip
        await db.commit()
        rows = (await db.execute(select(UsageHourly).where(
            UsageHourly.org_id == org.org_id))).scalars().all()  # fmt: skip
        stats = {s.source: s for s in (await db.execute(select(UsageSourceStat))).scalars()}

        assert (result.accepted, result.duplicates) == (3, 1)
        [row] = rows
        assert row.value == Decimal("5501.0")  # 3 x 1800.5 + 99.5
        assert row.events == 4
        assert row.hour == hour - timedelta(hours=2)
        assert (row.region, row.gpu_model, row.tenancy_kind, row.tenancy) == (
            "ca-qc-1",
            "h100",
            "slurm",
            "ten_k",
        )
        assert (stats["partner"].accepted, stats["partner"].duplicates) == (3, 1)
        assert datetime.now(UTC) - stats["partner"].last_seen_at < timedelta(days=1)
