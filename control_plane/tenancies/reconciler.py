"""The reconciler: converges every tenancy's actual state to its desired state through
its driver, safely with several replicas and across crashes.

Work is claimed with a lease (a token and an expiry, taken with ``FOR UPDATE SKIP LOCKED``
on PostgreSQL) and committed before any driver call; the driver is called with no
transaction open; the result is written back only if the lease is still ours and the
tenancy has not moved meanwhile (a release asked for during provisioning wins). A
process that dies mid-step leaves a lease that expires, and another replica (or the
restarted process) runs the step again; driver steps are idempotent, so nothing happens
twice. Failures retry with exponential back-off; a provisioning step that keeps failing
(or fails permanently) fails the tenancy, which is then taken down and cleaned like any
other; a release or clean that keeps failing is flagged as stuck on the timeline and in
metrics for an operator, and keeps retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.tenancies import claims, repository
from control_plane.tenancies.accrual import accrue_closed_hours, hour_start
from control_plane.tenancies.claims import Share
from control_plane.tenancies.drivers.base import (
    Allocation,
    Driver,
    Observed,
    PermanentError,
    Resizable,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.lifecycle import WORKING, TenancyState
from control_plane.tenancies.machine_access import store_credential
from control_plane.tenancies.models import GpuAllocation, Tenancy, TenancyEvent
from control_plane.tenancies.pool_drain import announce_drains
from control_plane.tenancies.reads import allocation_of
from control_plane.tenancies.service import begin_release
from control_plane.tenancies.timeline import Actor, note, transition

log = structlog.get_logger("tenancies.reconciler")

STEPS = Counter("cp_reconciler_steps_total", "Driver steps the reconciler ran", ["step", "outcome"])
STUCK = Gauge("cp_tenancies_stuck", "Tenancies flagged as stuck (an operator should look)")

ACTOR = Actor.system("tenancies.reconciler")
Step = Literal["provision", "resize", "watch", "release", "clean"]
POLL = timedelta(seconds=2)  # a step that is not done yet is looked at again after this
WATCH = timedelta(seconds=60)  # idle checks of tenancies that opted into auto-release
EXPIRY_WARNING = timedelta(minutes=15)
MAX_BACKOFF_SECONDS = 300.0
BATCH = 16

# Test hook: called with (step, tenancy id) just after the driver answered and before the
# answer is written back, so a test can kill the worker at the worst moment.
AfterDriverCall = Callable[[str, str], Awaitable[None]]


@dataclass
class Outcome:
    result: StepResult | Observed | None = None
    error: BaseException | None = None


@dataclass
class Reconciler:
    sessionmaker: async_sessionmaker[AsyncSession]
    drivers: Drivers
    clock: Clock
    settings: Settings
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    after_driver_call: AfterDriverCall | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by stop(): finish the step in hand, give back the rest of the claim, return.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # How converge() waits for a step due later; tests pass one that moves their clock.
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep

    # --- loop ---------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Until :meth:`stop` (or cancelled): timers, then claimed work, then sleep until
        woken or due."""
        while not self.stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad tick must not stop the loop; it is logged
                log.exception("reconcile tick failed")
            if self.stopping.is_set():
                break
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.reconcile_interval_seconds)

    async def stop(self, running: asyncio.Task[None], grace_seconds: float) -> None:
        """Stop ``running`` (the task of :meth:`run_forever`) the way a rolling restart
        wants: the step in hand finishes and is written back, the rest of its claim is
        given back at once (another replica takes it now, not when the lease lapses), and
        no new work is claimed. A step still running after ``grace_seconds`` is cancelled:
        its lease then lapses and another replica redoes it (steps are idempotent)."""
        self.stopping.set()
        self.wake.set()
        try:
            finished, _ = await asyncio.wait({running}, timeout=grace_seconds)
        finally:  # also when the shutdown itself is cancelled: no loop is left behind
            if not running.done():
                running.cancel()
        if not finished:
            log.warning("reconcile step cancelled at shutdown", grace_seconds=grace_seconds)
            with contextlib.suppress(asyncio.CancelledError):
                await running

    async def run_once(self) -> int:
        """One pass: lease ends, idle and usage timers, then every claimable step once
        (until :meth:`stop`). Returns how many steps ran."""
        await self.run_timers()
        worked = 0
        while not self.stopping.is_set() and (claimed := await self.claim(BATCH)):
            for done, (tenancy_id, token) in enumerate(claimed):
                if self.stopping.is_set():
                    await self.give_back(token, [tenancy for tenancy, _ in claimed[done:]])
                    return worked
                await self.work(tenancy_id, token)
                worked += 1
            if len(claimed) < BATCH:
                break
        return worked

    async def converge(self, max_passes: int = 50) -> None:
        """Run passes until no tenancy has work left, waiting (with ``self.pause``) for
        steps that are due later, such as a node still booting."""
        for _ in range(max_passes):
            if await self.run_once():
                continue
            pending = await self.next_pending()
            if pending is None:
                return
            await self.pause(max(0.0, (pending - self.clock.now()).total_seconds()))

    async def next_pending(self) -> datetime | None:
        """When the earliest unfinished step (not idle watching) is next due."""
        async with self.sessionmaker() as db:
            earliest = await db.execute(
                select(func.min(Tenancy.next_attempt_at)).where(
                    Tenancy.next_attempt_at.is_not(None),
                    or_(
                        Tenancy.state.in_(sorted(WORKING)),
                        and_(
                            Tenancy.state == TenancyState.ACTIVE,
                            Tenancy.generation != Tenancy.applied_generation,
                        ),
                    ),
                )
            )
            return earliest.scalar_one_or_none()

    # --- claiming -----------------------------------------------------------------------

    async def claim(self, limit: int) -> list[tuple[str, str]]:
        now = self.clock.now()
        token = new_id("lea")
        async with self.sessionmaker() as db:
            due = [
                Tenancy.next_attempt_at.is_not(None),
                Tenancy.next_attempt_at <= now,
                or_(Tenancy.lease_expires_at.is_(None), Tenancy.lease_expires_at < now),
                or_(
                    Tenancy.state.in_(sorted(WORKING)),
                    and_(
                        Tenancy.state == TenancyState.ACTIVE,
                        or_(
                            Tenancy.generation != Tenancy.applied_generation,
                            Tenancy.idle_release_minutes.is_not(None),
                        ),
                    ),
                ),
            ]
            query = select(Tenancy.id).where(*due).order_by(Tenancy.next_attempt_at).limit(limit)
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list((await db.execute(query)).scalars())
            if not ids:
                await db.rollback()
                return []
            lease_end = now + timedelta(seconds=self.settings.reconcile_lease_seconds)
            await db.execute(
                update(Tenancy)
                .where(Tenancy.id.in_(ids), *due)
                .values(lease_token=token, lease_expires_at=lease_end)
            )
            mine = await db.execute(
                select(Tenancy.id).where(Tenancy.id.in_(ids), Tenancy.lease_token == token)
            )
            claimed = [(tenancy_id, token) for tenancy_id in mine.scalars()]
            await db.commit()
        return claimed

    async def give_back(self, token: str, tenancy_ids: list[str]) -> None:
        """End our lease on tenancies claimed and not worked on: claimable again now."""
        async with self.sessionmaker() as db:
            await db.execute(
                update(Tenancy)
                .where(Tenancy.id.in_(tenancy_ids), Tenancy.lease_token == token)
                .values(lease_token=None, lease_expires_at=None)
            )
            await db.commit()

    # --- one step -----------------------------------------------------------------------

    async def work(self, tenancy_id: str, token: str) -> None:
        async with self.sessionmaker() as db:
            tenancy = await db.get(Tenancy, tenancy_id)
            if tenancy is None or tenancy.lease_token != token:
                return
            step = _step_of(tenancy)
            seen = (tenancy.state, tenancy.generation)
            live = (await repository.live_allocations(db, [tenancy.id])).get(tenancy.id, [])
            allocation = await allocation_of(db, tenancy, live)
            previous = await self._previous(db, tenancy) if step == "resize" else None
            first_attempt = tenancy.attempts == 0
            await db.rollback()
        driver = self.drivers.for_tenancy(allocation.region, allocation.kind)
        outcome = Outcome()
        try:
            outcome.result = await self._call(driver, step, allocation, previous, first_attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is written back and retried or failed
            outcome.error = exc
        STEPS.labels(step, "error" if outcome.error is not None else "ok").inc()
        if self.after_driver_call is not None:
            await self.after_driver_call(step, tenancy_id)
        await self._write_back(tenancy_id, token, seen, step, outcome)

    async def _call(
        self,
        driver: Driver,
        step: Step,
        allocation: Allocation,
        previous: Allocation | None,
        first_attempt: bool,
    ) -> StepResult | Observed:
        timeout = self.settings.reconcile_lease_seconds / 2
        if step == "provision":
            if first_attempt:
                await asyncio.wait_for(driver.validate(allocation), timeout)
            return await asyncio.wait_for(driver.provision(allocation), timeout)
        if step == "resize":
            assert isinstance(driver, Resizable)
            assert previous is not None
            return await asyncio.wait_for(driver.resize(allocation, previous), timeout)
        if step == "watch":
            return await asyncio.wait_for(driver.describe(allocation), timeout)
        if step == "release":
            return await asyncio.wait_for(driver.release(allocation), timeout)
        return await asyncio.wait_for(driver.clean(allocation), timeout)

    async def _write_back(
        self, tenancy_id: str, token: str, seen: tuple[str, int], step: Step, outcome: Outcome
    ) -> None:
        async with self.sessionmaker() as db:
            query = select(Tenancy).where(Tenancy.id == tenancy_id)
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            tenancy = (await db.execute(query)).scalar_one_or_none()
            if tenancy is None or tenancy.lease_token != token:
                return  # our lease lapsed and another worker owns the tenancy now
            now = self.clock.now()
            tenancy.lease_token = None
            tenancy.lease_expires_at = None
            if (tenancy.state, tenancy.generation) != seen:
                tenancy.next_attempt_at = now  # it moved meanwhile: look again at once
            elif outcome.error is not None:
                await self._failed(db, tenancy, step, outcome.error, now)
            elif isinstance(outcome.result, Observed):
                await self._watched(db, tenancy, outcome.result, now)
            elif outcome.result is not None:
                await self._stepped(db, tenancy, step, outcome.result, now)
            await db.commit()

    async def _stepped(
        self, db: AsyncSession, tenancy: Tenancy, step: Step, result: StepResult, now: datetime
    ) -> None:
        region = self.settings.region
        if result.facts:
            tenancy.facts = {**tenancy.facts, **result.facts}
        if result.credential is not None:  # kept encrypted until its owner reveals it once
            await store_credential(db, tenancy, result.credential, actor=ACTOR,
                                   clock=self.clock, settings=self.settings)  # fmt: skip
        tenancy.attempts = 0
        tenancy.last_error = None
        if not result.done:
            if result.detail and await _last_detail(db, tenancy.id) != result.detail:
                note(db, tenancy, "step", result.detail, ACTOR, now)
            tenancy.next_attempt_at = now + POLL
            return
        if step == "provision":
            tenancy.activated_at = now
            tenancy.accrued_until = now
            await transition(db, tenancy, TenancyState.ACTIVE, detail=result.detail or "up",
                             actor=ACTOR, at=now, ledger_region=region)  # fmt: skip
            tenancy.next_attempt_at = now + WATCH if tenancy.idle_release_minutes else None
        elif step == "resize":
            tenancy.applied_generation = tenancy.generation
            note(db, tenancy, "step", result.detail or "resized", ACTOR, now)
            tenancy.next_attempt_at = now + WATCH if tenancy.idle_release_minutes else None
        elif step == "release":
            await transition(db, tenancy, TenancyState.CLEANING, detail=result.detail or
                             "workloads stopped, access removed", actor=ACTOR, at=now,
                             ledger_region=region)  # fmt: skip
            tenancy.next_attempt_at = now
        else:  # clean: the capacity goes back to the pool
            await self._return_gpus(db, tenancy, now)
            final = TenancyState.FAILED if tenancy.failure_reason else TenancyState.RELEASED
            tenancy.released_at = now
            tenancy.next_attempt_at = None
            await transition(db, tenancy, final, detail=result.detail or "cleaned",
                             actor=ACTOR, at=now, ledger_region=region)  # fmt: skip

    async def _watched(
        self, db: AsyncSession, tenancy: Tenancy, observed: Observed, now: datetime
    ) -> None:
        tenancy.attempts = 0
        tenancy.next_attempt_at = now + WATCH
        minutes = tenancy.idle_release_minutes
        if minutes is None or observed.busy is None:
            return
        if observed.busy:
            tenancy.idle_since = None
            return
        tenancy.idle_since = tenancy.idle_since or now
        if now - tenancy.idle_since >= timedelta(minutes=minutes):
            reason = f"idle auto-release: no workload for {minutes} min"
            await begin_release(
                db, tenancy, actor=ACTOR, at=now, settings=self.settings, reason=reason
            )

    async def _failed(
        self, db: AsyncSession, tenancy: Tenancy, step: Step, error: BaseException, now: datetime
    ) -> None:
        message = _message(error)
        tenancy.attempts += 1
        tenancy.last_error = message[:500]
        permanent = isinstance(error, PermanentError)
        give_up = permanent or tenancy.attempts >= self.settings.reconcile_max_attempts
        note(db, tenancy, "error", f"{step} failed (attempt {tenancy.attempts}): {message}",
             ACTOR, now)  # fmt: skip
        if step == "provision" and give_up:
            tenancy.failure_reason = f"provisioning failed: {message}"[:500]
            await begin_release(db, tenancy, actor=ACTOR, at=now, settings=self.settings,
                                reason=tenancy.failure_reason)  # fmt: skip
            return
        if step == "watch":
            tenancy.next_attempt_at = now + WATCH
            return
        if give_up and tenancy.stuck_since is None:
            _flag_stuck(db, tenancy, f"{step} failed {tenancy.attempts} times", now)
        tenancy.next_attempt_at = now + timedelta(seconds=_backoff(tenancy.attempts))

    async def _return_gpus(self, db: AsyncSession, tenancy: Tenancy, now: datetime) -> None:
        live = (await repository.live_allocations(db, [tenancy.id])).get(tenancy.id, [])
        await claims.give_back(db, [Share(a.gpu_id, a.node_id, a.milli) for a in live])
        await db.execute(
            update(GpuAllocation)
            .where(GpuAllocation.id.in_([a.id for a in live]))
            .values(released_at=now)
        )

    async def _previous(self, db: AsyncSession, tenancy: Tenancy) -> Allocation:
        """The allocation before the pending resize: the rows released most recently."""
        last = (
            await db.execute(
                select(GpuAllocation.released_at)
                .where(
                    GpuAllocation.tenancy_id == tenancy.id, GpuAllocation.released_at.is_not(None)
                )
                .order_by(GpuAllocation.released_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        rows = (
            (
                await db.execute(
                    select(GpuAllocation).where(
                        GpuAllocation.tenancy_id == tenancy.id, GpuAllocation.released_at == last
                    )
                )
            )
            .scalars()
            .all()
        )
        return await allocation_of(db, tenancy, rows)

    # --- timers -------------------------------------------------------------------------

    async def flag_stuck(self, now: datetime) -> None:
        """Flag, once, tenancies whose placing, provisioning, release or clean has taken
        longer than ``reconcile_stuck_after_seconds``; publish how many are stuck."""
        limit = now - timedelta(seconds=self.settings.reconcile_stuck_after_seconds)
        async with self.sessionmaker() as db:
            query = (
                select(Tenancy)
                .where(
                    Tenancy.state.in_(sorted(WORKING)),
                    Tenancy.stuck_since.is_(None),
                    Tenancy.state_changed_at < limit,
                )
                .order_by(Tenancy.id)
                .limit(500)
            )
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for tenancy in (await db.execute(query)).scalars():
                minutes = int((now - tenancy.state_changed_at).total_seconds() // 60)
                _flag_stuck(db, tenancy, f"still {tenancy.state} after {minutes} min", now)
            stuck = await db.execute(
                select(func.count())
                .select_from(Tenancy)
                .where(Tenancy.state.in_(sorted(WORKING)), Tenancy.stuck_since.is_not(None))
            )
            STUCK.set(stuck.scalar_one())
            await db.commit()

    async def run_timers(self) -> None:
        """Pool drains (which cut leases), work that is stuck, lease ends (with a warning
        first) and usage of hours that have closed."""
        now = self.clock.now()
        async with self.sessionmaker() as db:
            await announce_drains(db, now, ACTOR)
            await db.commit()
        await self.flag_stuck(now)
        async with self.sessionmaker() as db:
            query = (
                select(Tenancy)
                .where(
                    Tenancy.state == TenancyState.ACTIVE,
                    or_(
                        and_(Tenancy.ends_at.is_not(None), Tenancy.ends_at <= now + EXPIRY_WARNING),
                        Tenancy.accrued_until < hour_start(now),
                    ),
                )
                .order_by(Tenancy.id)
                .limit(500)
            )
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for tenancy in (await db.execute(query)).scalars():
                if tenancy.ends_at is not None and tenancy.ends_at <= now:
                    await begin_release(
                        db,
                        tenancy,
                        actor=ACTOR,
                        at=now,
                        settings=self.settings,
                        bill_until=tenancy.ends_at,
                        reason=f"lease ended at {tenancy.ends_at.isoformat()}",
                    )
                    continue
                await accrue_closed_hours(db, tenancy, now)
                if tenancy.ends_at is not None and not tenancy.expiry_warned:
                    tenancy.expiry_warned = True
                    note(db, tenancy, "warning",
                         f"lease ends at {tenancy.ends_at.isoformat()}: the tenancy will be "
                         "released then", ACTOR, now)  # fmt: skip
            await db.commit()


def _flag_stuck(db: AsyncSession, tenancy: Tenancy, why: str, now: datetime) -> None:
    tenancy.stuck_since = now
    note(db, tenancy, "warning", f"{tenancy.state} is stuck ({why}): an operator should look",
         ACTOR, now)  # fmt: skip
    log.warning("tenancy stuck", tenancy=tenancy.id, state=tenancy.state, why=why)


def _step_of(tenancy: Tenancy) -> Step:
    state = TenancyState(tenancy.state)
    if state is TenancyState.PROVISIONING:
        return "provision"
    if state is TenancyState.RELEASING:
        return "release"
    if state is TenancyState.CLEANING:
        return "clean"
    if tenancy.generation != tenancy.applied_generation:
        return "resize"
    return "watch"


async def _last_detail(db: AsyncSession, tenancy_id: str) -> str | None:
    row = await db.execute(
        select(TenancyEvent.detail)
        .where(TenancyEvent.tenancy_id == tenancy_id)
        .order_by(TenancyEvent.id.desc())
        .limit(1)
    )
    return row.scalar_one_or_none()


def _backoff(attempts: int) -> float:
    return min(MAX_BACKOFF_SECONDS, 2.0**attempts) * random.uniform(0.5, 1.0)  # noqa: S311


def _message(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "the driver did not answer in time"
    text = str(error) or type(error).__name__
    return text if len(text) < 400 else text[:397] + "..."


__all__ = ["Reconciler", "TenancyKind"]
