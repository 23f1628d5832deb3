"""GPU quotas per organization, region and GPU model: defaults plus per-org overrides.

A rule is keyed by (org, region, model), each of which may be ``*``. For every
(region, model) key that matches a request, an organization's own rule replaces the
default one; every matching rule must hold. Usage counts GPUs held by tenancies that
are not released, in thousandths, so fractional shares count for what they take.
Checked after :func:`lock_org`, in the transaction that allocates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Select, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.base import UTCDateTime
from control_plane.ids import new_id
from control_plane.tenancies.errors import QuotaExceeded
from control_plane.tenancies.lifecycle import HOLDING
from control_plane.tenancies.models import GpuQuota, Tenancy
from control_plane.tenancies.schemas import QuotaRead, QuotaSet

ANY = "*"

_LOCK = text(
    "INSERT INTO tenancy_org_lock (org_id, touched_at) VALUES (:org_id, :at) "
    "ON CONFLICT (org_id) DO UPDATE SET touched_at = excluded.touched_at"
).bindparams(bindparam("at", type_=UTCDateTime()))


_ORG_RULES = select(GpuQuota).where(GpuQuota.org_id.in_([bindparam("org_id"), ANY]))


async def lock_org(db: AsyncSession, org_id: str, at: datetime) -> None:
    """Hold the organization's allocation lock until the transaction ends."""
    await db.execute(_LOCK, {"org_id": org_id, "at": at})


async def rules_for(db: AsyncSession, org_id: str, region: str, gpu_model: str) -> list[GpuQuota]:
    """The rules that bind a request, the organization's own winning over defaults."""
    rows = (
        await db.execute(
            select(GpuQuota).where(
                GpuQuota.org_id.in_([org_id, ANY]),
                GpuQuota.region_code.in_([region, ANY]),
                GpuQuota.gpu_model_code.in_([gpu_model, ANY]),
            )
        )
    ).scalars()
    chosen: dict[tuple[str, str], GpuQuota] = {}
    for rule in rows:
        key = (rule.region_code, rule.gpu_model_code)
        if key not in chosen or rule.org_id != ANY:
            chosen[key] = rule
    return list(chosen.values())


@lru_cache(maxsize=16)
def _in_use_query(region: bool, gpu_model: bool, excluding: bool) -> Select[int]:
    """Built once per shape (construction costs as much CPU as the query)."""
    held = func.coalesce(
        func.sum(Tenancy.node_count * Tenancy.gpus_per_node * Tenancy.gpu_milli), 0
    )
    query = select(held).where(
        Tenancy.org_id == bindparam("org_id"), Tenancy.state.in_(sorted(HOLDING))
    )
    if region:
        query = query.where(Tenancy.region_code == bindparam("region"))
    if gpu_model:
        query = query.where(Tenancy.gpu_model_code == bindparam("gpu_model"))
    if excluding:
        query = query.where(Tenancy.id != bindparam("excluding"))
    return query


async def in_use_milli(
    db: AsyncSession, org_id: str, region: str, gpu_model: str, *, excluding: str | None = None
) -> int:
    query = _in_use_query(region != ANY, gpu_model != ANY, excluding is not None)
    values = {"org_id": org_id, "region": region, "gpu_model": gpu_model, "excluding": excluding}
    return int((await db.execute(query, values)).scalar_one())


async def check(
    db: AsyncSession,
    *,
    org_id: str,
    region: str,
    gpu_model: str,
    milli: int,
    excluding: str | None = None,
) -> None:
    """Refuse (409 ``quota-exceeded``) when ``milli`` more would pass any binding rule."""
    for rule in await rules_for(db, org_id, region, gpu_model):
        used = await in_use_milli(
            db, org_id, rule.region_code, rule.gpu_model_code, excluding=excluding
        )
        if used + milli > rule.max_gpus * 1000:
            where = " ".join(
                part
                for part in (
                    f"in {rule.region_code}" if rule.region_code != ANY else "",
                    f"of {rule.gpu_model_code}" if rule.gpu_model_code != ANY else "",
                )
                if part
            )
            raise QuotaExceeded(
                detail=(
                    f"Your organization may hold {rule.max_gpus} GPUs {where or 'in total'}; "
                    f"it holds {used / 1000:g} and this asks for {milli / 1000:g}."
                ),
                extra={
                    "limit": rule.max_gpus,
                    "in_use": used / 1000,
                    "requested": milli / 1000,
                    "rule": {"region": rule.region_code, "gpu_model": rule.gpu_model_code,
                             "org": "default" if rule.org_id == ANY else rule.org_id},
                },
            )  # fmt: skip


async def set_rule(db: AsyncSession, data: QuotaSet, at: datetime) -> QuotaRead:
    existing = (
        await db.execute(
            select(GpuQuota).where(
                GpuQuota.org_id == data.org_id,
                GpuQuota.region_code == data.region,
                GpuQuota.gpu_model_code == data.gpu_model,
            )
        )
    ).scalar_one_or_none()
    if existing is None:
        existing = GpuQuota(
            id=new_id("quo"), org_id=data.org_id, region_code=data.region,
            gpu_model_code=data.gpu_model, max_gpus=data.max_gpus, updated_at=at,
        )  # fmt: skip
        db.add(existing)
    else:
        existing.max_gpus = data.max_gpus
        existing.updated_at = at
    await db.flush()
    return _read(existing)


async def all_rules(db: AsyncSession) -> list[QuotaRead]:
    rows = await db.execute(
        select(GpuQuota).order_by(GpuQuota.org_id, GpuQuota.region_code, GpuQuota.gpu_model_code)
    )
    return [_read(r) for r in rows.scalars()]


async def for_org(db: AsyncSession, org_id: str) -> list[QuotaRead]:
    """The rules binding an organization (its own and the defaults it has not overridden),
    with what it uses under each."""
    rows = (await db.execute(_ORG_RULES, {"org_id": org_id})).scalars()
    chosen: dict[tuple[str, str], GpuQuota] = {}
    for rule in rows:
        key = (rule.region_code, rule.gpu_model_code)
        if key not in chosen or rule.org_id != ANY:
            chosen[key] = rule
    result = []
    for (region, model), rule in sorted(chosen.items()):
        read = _read(rule)
        read.in_use = -(-await in_use_milli(db, org_id, region, model) // 1000)
        result.append(read)
    return result


def _read(rule: GpuQuota) -> QuotaRead:
    return QuotaRead(
        org_id=rule.org_id, region=rule.region_code, gpu_model=rule.gpu_model_code,
        max_gpus=rule.max_gpus,
    )  # fmt: skip


__all__: Sequence[str] = ["all_rules", "check", "for_org", "lock_org", "set_rule"]
