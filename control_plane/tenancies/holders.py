"""Who held which GPU when: what telemetry attributes utilization and energy to, and what
waste analysis reads about live tenancies (other domains call these, never the tables)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.models import GpuAllocation, Tenancy

__all__ = ["Holder", "LiveTenancy", "holders_during", "live_tenancies"]

_ENDPOINT_OWNER = "endpoint:"


@dataclass(frozen=True, slots=True)
class Holder:
    """A share of one GPU held by one tenancy for part of an interval."""

    gpu_id: str
    tenancy_id: str
    org_id: str
    endpoint_id: str | None  # the inference endpoint the tenancy is a replica of
    milli: int
    start: datetime  # clipped to the interval asked about
    end: datetime


@dataclass(frozen=True, slots=True)
class LiveTenancy:
    id: str
    org_id: str
    name: str
    kind: str
    region: str
    gpu_model: str
    gpu_milli: int
    gpus_per_node: int
    node_count: int
    endpoint_id: str | None
    activated_at: datetime | None


def _endpoint_of(managed_by: str | None) -> str | None:
    if managed_by and managed_by.startswith(_ENDPOINT_OWNER):
        return managed_by[len(_ENDPOINT_OWNER) :]
    return None


async def holders_during(
    db: AsyncSession, gpu_ids: Sequence[str], start: datetime, end: datetime
) -> list[Holder]:
    """Every allocation of these GPUs that overlaps ``[start, end)``."""
    if not gpu_ids:
        return []
    rows = await db.execute(
        select(
            GpuAllocation.gpu_id, GpuAllocation.tenancy_id, Tenancy.org_id, Tenancy.managed_by,
            GpuAllocation.milli, GpuAllocation.allocated_at, GpuAllocation.released_at,
        )
        .join(Tenancy, Tenancy.id == GpuAllocation.tenancy_id)
        .where(
            GpuAllocation.gpu_id.in_(list(gpu_ids)),
            GpuAllocation.allocated_at < end,
            or_(GpuAllocation.released_at.is_(None), GpuAllocation.released_at > start),
        )
    )  # fmt: skip
    return [
        Holder(gpu, tenancy, org, _endpoint_of(owner), milli, max(since, start),
               min(until, end) if until is not None else end)
        for gpu, tenancy, org, owner, milli, since, until in rows
    ]  # fmt: skip


async def live_tenancies(
    db: AsyncSession, org_ids: Sequence[str] | None = None
) -> list[LiveTenancy]:
    """Active tenancies (of these organizations, or all), oldest first."""
    query = select(Tenancy).where(Tenancy.state == TenancyState.ACTIVE.value)
    if org_ids is not None:
        query = query.where(Tenancy.org_id.in_(list(org_ids)))
    rows = await db.execute(query.order_by(Tenancy.id))
    return [
        LiveTenancy(
            id=t.id, org_id=t.org_id, name=t.name, kind=t.kind, region=t.region_code,
            gpu_model=t.gpu_model_code, gpu_milli=t.gpu_milli, gpus_per_node=t.gpus_per_node,
            node_count=t.node_count, endpoint_id=_endpoint_of(t.managed_by),
            activated_at=t.activated_at,
        )
        for t in rows.scalars()
    ]  # fmt: skip


async def tenancy_ids_of_project(db: AsyncSession, org_id: str, project_id: str) -> list[str]:
    rows = await db.execute(
        select(Tenancy.id).where(Tenancy.org_id == org_id, Tenancy.project_id == project_id)
    )
    return list(rows.scalars())
