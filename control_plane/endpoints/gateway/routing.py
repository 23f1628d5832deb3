"""Where a gateway request goes: the live endpoints of each organization, their served
versions (with traffic shares) and their ready replicas, read from the database at most
once per ``ttl`` and shared by every request of this process.

Replicas are chosen by least outstanding requests (ties at random); a replica's
outstanding count survives refreshes, so a reload never resets the balance.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.endpoints import repository
from control_plane.endpoints.replicas import is_ready, is_serving, owner_of
from control_plane.endpoints.stores import path_of
from control_plane.tenancies import managed

__all__ = ["Route", "RouteTable", "Upstream", "Version"]


@dataclass
class Upstream:
    """One ready replica (a Triton server) and the requests in flight to it."""

    tenancy_id: str
    grpc_url: str
    http_url: str
    outstanding: int = 0


@dataclass(frozen=True, slots=True)
class Version:
    number: int
    served_model: str
    percent: int
    model_dir: Path


@dataclass(frozen=True)
class Route:
    endpoint_id: str
    org_id: str
    project_id: str | None
    name: str
    region: str
    versions: tuple[Version, ...]  # serving, with a share of the traffic
    upstreams: tuple[Upstream, ...]
    desired_replicas: int
    max_replicas: int
    created_at: float = field(default_factory=time.monotonic)

    def version_for(self, draw: float) -> Version | None:
        """The version a request goes to, for ``draw`` uniform in [0, 1)."""
        total = sum(v.percent for v in self.versions)
        if total <= 0:
            return self.versions[0] if self.versions else None
        point = draw * total
        for version in self.versions:
            point -= version.percent
            if point < 0:
                return version
        return self.versions[-1]

    def least_outstanding(self, exclude: Sequence[Upstream] = ()) -> Upstream | None:
        candidates = [u for u in self.upstreams if u not in exclude]
        if not candidates:
            return None
        low = min(u.outstanding for u in candidates)
        return random.choice([u for u in candidates if u.outstanding == low])  # noqa: S311


class RouteTable:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._routes: dict[tuple[str, str], Route] = {}
        self._upstreams: dict[str, Upstream] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, org_id: str, name: str) -> Route | None:
        if time.monotonic() - self._loaded_at >= self._ttl:
            await self.refresh()
        return self._routes.get((org_id, name))

    async def of_org(self, org_id: str) -> list[Route]:
        if time.monotonic() - self._loaded_at >= self._ttl:
            await self.refresh()
        return sorted(
            (r for (o, _), r in self._routes.items() if o == org_id), key=lambda r: r.name
        )

    async def refresh(self, *, force: bool = False) -> None:
        """Reload from the database (once for all waiting requests)."""
        started = time.monotonic()
        async with self._lock:
            if not force and self._loaded_at >= started - self._ttl and self._routes:
                return
            async with self._sessionmaker() as db:
                routes = await self._load(db)
            self._routes = routes
            self._loaded_at = time.monotonic()

    async def _load(self, db: AsyncSession) -> dict[tuple[str, str], Route]:
        endpoints = await repository.live_endpoints(db)
        versions = await repository.versions_of(db, [e.id for e in endpoints])
        replicas = await managed.replicas_of(db, [owner_of(e.id) for e in endpoints])
        by_owner: dict[str, list[Upstream]] = {}
        seen: dict[str, Upstream] = {}
        for replica in replicas:
            if not is_ready(replica) or "triton_grpc" not in replica.facts:
                continue
            upstream = self._upstreams.get(replica.tenancy_id) or Upstream(
                replica.tenancy_id, replica.facts["triton_grpc"], replica.facts["triton_http"]
            )
            seen[replica.tenancy_id] = upstream
            by_owner.setdefault(replica.owner, []).append(upstream)
        self._upstreams = seen
        routes: dict[tuple[str, str], Route] = {}
        for endpoint in endpoints:
            served = tuple(
                Version(v.number, v.served_model, v.traffic_percent, path_of(v.source_uri))
                for v in versions
                if v.endpoint_id == endpoint.id and is_serving(v)
            )
            routes[(endpoint.org_id, endpoint.name)] = Route(
                endpoint_id=endpoint.id,
                org_id=endpoint.org_id,
                project_id=endpoint.project_id,
                name=endpoint.name,
                region=endpoint.region_code,
                versions=served,
                upstreams=tuple(by_owner.get(owner_of(endpoint.id), ())),
                desired_replicas=endpoint.desired_replicas,
                max_replicas=endpoint.max_replicas,
            )
        return routes
