"""The autoscaler: every few seconds, each endpoint's replica count follows the gateway's
signals (:mod:`control_plane.endpoints.scaling`); and the cold-start path, which gives an
endpoint scaled to zero a replica as soon as a request waits for it."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.endpoints import repository
from control_plane.endpoints.gateway.routing import RouteTable
from control_plane.endpoints.gateway.stats import Stats
from control_plane.endpoints.models import Endpoint
from control_plane.endpoints.observe import record_io
from control_plane.endpoints.scaling import Signals, desired_replicas
from control_plane.endpoints.service import Deps, converge_now, note
from control_plane.periodic import every
from control_plane.tenancies.timeline import Actor

__all__ = ["Autoscaler"]

log = structlog.get_logger("control_plane.endpoints")
ACTOR = Actor.system("endpoints.autoscaler")


class Autoscaler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        deps: Deps,
        stats: Stats,
        kick: Callable[[], None] = lambda: None,
        routes: RouteTable | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._deps = deps
        self._stats = stats
        self._kick = kick  # wakes the reconciler
        self._routes = routes  # to read served versions' inputs and outputs

    async def wake(self, endpoint_id: str) -> None:
        """A request waits for an endpoint with no replica: ask for one now."""
        async with self._sessionmaker() as db:
            endpoint = await repository.endpoint_by_id(db, endpoint_id, for_update=True)
            if endpoint is None or endpoint.deleted_at is not None or not endpoint.max_replicas:
                return
            if endpoint.desired_replicas == 0:
                await self._set(
                    db, endpoint, max(1, endpoint.min_replicas), "cold start: a request is waiting"
                )
            await db.commit()
        self._kick()

    async def _set(self, db: AsyncSession, endpoint: Endpoint, count: int, why: str) -> None:
        now = self._deps.clock.now()
        note(
            db,
            endpoint,
            "scale",
            f"{endpoint.desired_replicas} -> {count} replicas: {why}",
            ACTOR,
            now,
        )
        endpoint.desired_replicas = count
        endpoint.updated_at = now
        versions = await repository.versions_of(db, [endpoint.id])
        await converge_now(db, endpoint, versions, ACTOR, self._deps)

    async def tick(self) -> int:
        """One pass over every endpoint; returns how many changed their replica count."""
        changed = 0
        async with self._sessionmaker() as db:
            for endpoint in await repository.live_endpoints(db):
                stats = self._stats.of(endpoint.id)
                last = stats.last_request
                signals = Signals(
                    tokens_per_second=stats.tokens_per_second(),
                    in_flight=stats.in_flight,
                    idle_seconds=None if last is None else time.monotonic() - last,
                )
                if last is None:  # never called here: idle since it was created
                    since_created = (self._deps.clock.now() - endpoint.created_at).total_seconds()
                    signals = Signals(signals.tokens_per_second, signals.in_flight, since_created)
                want = desired_replicas(
                    current=endpoint.desired_replicas,
                    min_replicas=endpoint.min_replicas,
                    max_replicas=endpoint.max_replicas,
                    target_tokens_per_s=endpoint.target_tokens_per_s,
                    target_queue_per_replica=endpoint.target_queue_per_replica,
                    scale_to_zero_after=endpoint.scale_to_zero_after_s,
                    signals=signals,
                )
                if want != endpoint.desired_replicas:
                    why = f"{signals.tokens_per_second:.1f} tokens/s, {signals.in_flight} in flight"
                    await self._set(db, endpoint, want, why)
                    changed += 1
            await db.commit()
        if changed:
            self._kick()
        return changed

    async def run(self, seconds: float) -> None:
        """Scale every ``seconds`` until cancelled; a bad tick is logged and the next one
        runs, and a tick in flight (a replica starting) finishes before the loop stops."""

        async def tick() -> None:
            await self.tick()
            if self._routes is not None:
                await record_io(self._sessionmaker, self._routes)

        await every(seconds, tick, name="autoscale")
