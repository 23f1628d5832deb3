"""Node lifecycle transitions counted per UTC day, for the operator dashboard's chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.http.pagination import PageRequest
from control_plane.ids import new_id
from control_plane.inventory import service
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.models import NodeEvent
from control_plane.seed.demo import seed_demo


async def _event(db: AsyncSession, node_id: str, to: NodeState, at: datetime) -> None:
    db.add(
        NodeEvent(
            id=new_id("nev"),
            node_id=node_id,
            from_state=NodeState.AVAILABLE,
            to_state=to,
            reason="test",
            actor="test",
            at=at,
        )
    )


class TestStateChangesPerDay:
    async def test_counts_each_day_by_the_state_entered_with_every_day_present(
        self, db: AsyncSession, clock: OffsetClock
    ) -> None:
        await seed_demo(db, clock)
        node = (await service.list_nodes(db, PageRequest(1, None))).items[0].id
        await _event(db, node, NodeState.DRAINING, datetime(2030, 5, 2, 23, 59, tzinfo=UTC))
        await _event(db, node, NodeState.MAINTENANCE, datetime(2030, 5, 3, 0, 0, tzinfo=UTC))
        await _event(db, node, NodeState.AVAILABLE, datetime(2030, 5, 3, 8, 0, tzinfo=UTC))
        await _event(db, node, NodeState.DRAINING, datetime(2030, 5, 3, 9, 0, tzinfo=UTC))
        await _event(db, node, NodeState.DRAINING, datetime(2030, 5, 6, 0, 0, tzinfo=UTC))
        await db.commit()

        days = await service.state_changes_per_day(db, date(2030, 5, 1), date(2030, 5, 5))

        assert list(days) == [date(2030, 5, d) for d in range(1, 6)]
        assert days[date(2030, 5, 1)] == {}
        assert days[date(2030, 5, 2)] == {NodeState.DRAINING: 1}
        assert days[date(2030, 5, 3)] == {
            NodeState.MAINTENANCE: 1,
            NodeState.AVAILABLE: 1,
            NodeState.DRAINING: 1,
        }
        assert days[date(2030, 5, 5)] == {}

    async def test_a_day_is_a_utc_day_whatever_the_offset_of_the_input(
        self, db: AsyncSession, clock: OffsetClock
    ) -> None:
        await seed_demo(db, clock)
        node = (await service.list_nodes(db, PageRequest(1, None))).items[0].id
        montreal = timezone(timedelta(hours=-5))
        # 21:00 in Montréal on 1 May is 02:00 UTC on 2 May.
        await _event(db, node, NodeState.DRAINING, datetime(2030, 5, 1, 21, 0, tzinfo=montreal))
        await db.commit()

        days = await service.state_changes_per_day(db, date(2030, 5, 1), date(2030, 5, 2))

        assert days == {date(2030, 5, 1): {}, date(2030, 5, 2): {NodeState.DRAINING: 1}}

    async def test_the_demo_fleets_history_is_counted(
        self, db: AsyncSession, clock: OffsetClock
    ) -> None:
        await seed_demo(db, clock)
        await db.commit()
        today = clock.now().date()

        days = await service.state_changes_per_day(db, today - timedelta(days=31), today)

        enrolments = sum(d.get(NodeState.ENROLLING, 0) for d in days.values())
        assert enrolments == 42
        assert sum(d.get(NodeState.MAINTENANCE, 0) for d in days.values()) == 2
