"""Gateway replicas flush token usage exactly once into one PostgreSQL: three meters (as
three gateway processes would hold, each with its own instance id and engine) count the same
organization, model and window, flush at the same time, and each crashes once between its
commit and its acknowledgement; the retries write nothing twice and drop nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.endpoints.gateway.usage import SOURCE, UsageKey, UsageMeter
from control_plane.metering.models import UsageEvent
from control_plane.settings import Settings
from tests.fixtures.factories import make_org

REPLICAS = 3
ROUNDS = 4


class _CrashAfterCommit(Exception):
    """The process died after its transaction committed, before it dropped the batch."""


async def test_three_gateways_flush_every_token_exactly_once(
    db: AsyncSession, settings: Settings, clock: OffsetClock
) -> None:
    org = await make_org(db)
    await db.commit()
    engines = [make_engine(settings.database_url) for _ in range(REPLICAS)]
    meters = [
        UsageMeter(make_sessionmaker(engine), clock, instance=f"gw-replica-{n}")
        for n, engine in enumerate(engines)
    ]
    rng = random.Random(9)
    sent = {"tokens_in": 0, "tokens_out": 0}
    crashed: set[int] = set()

    def crash_once(n: int) -> Callable[[], Awaitable[None]]:
        async def after_commit() -> None:
            if n not in crashed:
                crashed.add(n)
                raise _CrashAfterCommit

        return after_commit

    for n, meter in enumerate(meters):
        meter.after_commit = crash_once(n)
    try:
        for _ in range(ROUNDS):
            for meter in meters:
                for key_n in range(5):  # the same keys on every replica
                    key = UsageKey(
                        org_id=org.org_id, project_id=None, api_key_id=f"key_{key_n}",
                        endpoint_id="ep_shared", model="chat-v1", region="ca-qc-1",
                        window_start=meter.window_of(clock.now()),
                    )  # fmt: skip
                    tokens_in, tokens_out = rng.randint(1, 900), rng.randint(1, 300)
                    meter.add(key, tokens_in, tokens_out)
                    sent["tokens_in"] += tokens_in
                    sent["tokens_out"] += tokens_out
            outcomes = await asyncio.gather(*(m.flush() for m in meters), return_exceptions=True)
            assert all(isinstance(o, int | _CrashAfterCommit) for o in outcomes), outcomes
            clock.advance(61)  # the next round counts the next window
        for meter in meters:  # the batches whose acknowledgement was lost go again
            await meter.flush()
            assert meter.unflushed == 0
    finally:
        for engine in engines:
            await engine.dispose()

    assert crashed == set(range(REPLICAS))
    await db.rollback()
    stored = dict(
        (
            await db.execute(
                select(UsageEvent.type, func.sum(UsageEvent.value))
                .where(UsageEvent.source == SOURCE, UsageEvent.org_id == org.org_id)
                .group_by(UsageEvent.type)
            )
        ).all()
    )
    assert stored == {kind: Decimal(total) for kind, total in sent.items()}
