"""Tenancy rules: create (residency, quota, placement and GPU claims in one transaction),
read, resize, release. Nothing here calls a driver: the reconciler does, outside any
transaction. Services never commit; the request does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.recorder import actor_of
from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, InvalidInput
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.ids import new_id
from control_plane.inventory.capacity import (
    NodeCapacity,
    capacity_nodes,
    gpu_models_of_class,
    region_currencies,
)
from control_plane.placement import NodeState, Placement, Refusal, Request, place
from control_plane.pools import gating
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency
from control_plane.tenancies import claims, quotas, repository, shapes
from control_plane.tenancies.accrual import accrue
from control_plane.tenancies.claims import Share
from control_plane.tenancies.drivers.base import Resizable, TenancyKind
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.errors import InsufficientCapacity, QuotaExceeded
from control_plane.tenancies.forecast import Forecast, when_it_fits
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.models import GpuAllocation, Tenancy
from control_plane.tenancies.reads import reads_holding, tenancy_read, tenancy_reads
from control_plane.tenancies.schemas import (
    ANY_REGION,
    TenancyCreate,
    TenancyEventRead,
    TenancyRead,
    TenancyResize,
    TenancySchedule,
    TenancySpan,
)
from control_plane.tenancies.timeline import Actor, note, transition

# A claim lost to a concurrent create is retried with fresh capacity; each loss means
# another request won GPUs, so this bound is only reached under pathological churn.
MAX_CLAIM_ATTEMPTS = 64
MIN_LEASE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Grantee:
    """Who asks for GPUs, and when: pools open their nodes by organization and project."""

    org_id: str
    project_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Spec:
    gpu_models: tuple[str, ...]  # one model, or the models of a GPU class (placement picks)
    gpus_per_node: int
    node_count: int
    gpu_milli: int
    shape: str | None


def actor_from(scope: TenantScope) -> Actor:
    kind, actor_id = actor_of(scope.principal)
    label = scope.principal.display or actor_id or kind
    return Actor(kind, actor_id, str(label))


# --- create --------------------------------------------------------------------------------


async def create(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    data: TenancyCreate,
    *,
    clock: Clock,
    settings: Settings,
    drivers: Drivers,
) -> TenancyRead:
    scope.require(org_id, Permission.TENANCIES_WRITE)
    if data.kind is TenancyKind.INFERENCE:
        raise InvalidInput(
            detail="Inference replicas are made by inference endpoints: create an endpoint.",
            errors=[FieldError("body.kind", "created through /endpoints")],
        )
    project_id = scope.project_id or data.project_id
    return await _create(db, org_id, project_id, data, actor_from(scope), None,
                         clock=clock, settings=settings, drivers=drivers)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Managed:
    """A tenancy another domain owns and changes (an inference endpoint's replica)."""

    owner: str  # endpoint:ep_...
    gpu_milli: int
    workload: Mapping[str, Any]


async def create_managed(
    db: AsyncSession,
    org_id: str,
    project_id: str | None,
    data: TenancyCreate,
    managed: Managed,
    *,
    actor: Actor,
    clock: Clock,
    settings: Settings,
    drivers: Drivers,
) -> TenancyRead:
    """A tenancy for another domain, which has authorized the caller itself (an endpoint's
    replica, asked for by the endpoint's owner or its autoscaler)."""
    return await _create(db, org_id, project_id, data, actor, managed,
                         clock=clock, settings=settings, drivers=drivers)  # fmt: skip


async def _create(
    db: AsyncSession,
    org_id: str,
    project_id: str | None,
    data: TenancyCreate,
    actor: Actor,
    managed: Managed | None,
    *,
    clock: Clock,
    settings: Settings,
    drivers: Drivers,
) -> TenancyRead:
    now = clock.now()
    _check_times(data, now)
    _check_workspace(data)
    wanted = await _wanted_models(db, data)
    regions = await _candidate_regions(db, org_id, data, wanted, actor, clock, settings)
    await quotas.lock_org(db, org_id, now)
    spec_by_region = {r: await _spec(db, data, wanted, r) for r in regions}
    if managed is not None and managed.gpu_milli < 1000:
        spec_by_region = {r: replace(s, gpu_milli=managed.gpu_milli)
                          for r, s in spec_by_region.items()}  # fmt: skip
    regions = await _within_quota(db, org_id, spec_by_region)
    who = Grantee(org_id, project_id, now)
    placement, nodes, pool_end = await _place_and_claim(db, data.kind, spec_by_region, regions,
                                                        who)  # fmt: skip
    ends_at = _capped(data.ends_at, pool_end)
    spec = spec_by_region[placement.region]
    if len(placement.slots) > spec.gpus_per_node * spec.node_count:
        # A bare-metal tenancy holds whole nodes: the quota counts every GPU it gets (the
        # claim rolls back with this transaction when they do not fit).
        await quotas.check(db, org_id=org_id, region=placement.region,
                           gpu_model=placement.gpu_model,
                           milli=len(placement.slots) * spec.gpu_milli)  # fmt: skip
    if data.region == ANY_REGION:  # the explicit region was checked (and recorded) up front
        await residency.check_placement(
            db, org_id=org_id, region_code=placement.region, actor_kind=actor.kind,
            actor_id=actor.id, subject="tenancy:new", clock=clock, settings=settings,
        )  # fmt: skip
    driver = drivers.for_tenancy(placement.region, data.kind)
    per_node = len(placement.slots) // max(1, len(placement.node_ids))
    tenancy = Tenancy(
        id=new_id("ten"), org_id=org_id, project_id=project_id, name=data.name,
        labels=dict(data.labels), kind=data.kind.value, region_code=placement.region,
        gpu_model_code=placement.gpu_model, shape=spec.shape, node_count=len(placement.node_ids),
        gpus_per_node=per_node, gpu_milli=spec.gpu_milli, image=data.image,
        ssh_public_keys=list(data.ssh_public_keys), ends_at=ends_at,
        idle_release_minutes=data.idle_release_minutes, state=TenancyState.REQUESTED.value,
        failure_reason=None, driver=driver.name, simulated=driver.simulated, facts={},
        generation=1, applied_generation=1, lease_token=None, lease_expires_at=None,
        next_attempt_at=now, attempts=0, last_error=None, created_by=actor.label[:80],
        created_at=now, state_changed_at=now, activated_at=None, release_requested_at=None,
        released_at=None, accrued_until=None, idle_since=None, expiry_warned=False,
        stuck_since=None, managed_by=managed.owner if managed else None,
        workload=dict(managed.workload) if managed else _workspace_workload(data),
    )  # fmt: skip
    db.add(tenancy)
    await db.flush()  # the allocations refer to it (no ORM relationship orders the inserts)
    _add_allocations(db, tenancy.id, placement, nodes, now)
    await db.flush()
    where = f"{placement.region} on {', '.join(_hostnames(placement, nodes))}"
    if pool_end is not None and ends_at == pool_end:
        where += f" (pool window: the lease ends when it closes, at {pool_end.isoformat()})"
    for to, detail in (
        (TenancyState.PLACING, "residency and quota checks passed"),
        (TenancyState.PROVISIONING, f"placed {len(placement.slots)} GPU(s) in {where}"),
    ):
        await transition(db, tenancy, to, detail=detail, actor=actor, at=now,
                         ledger_region=settings.region)  # fmt: skip
    await db.flush()
    return await tenancy_read(db, tenancy)


def _check_workspace(data: TenancyCreate) -> None:
    if data.workspace is not None and data.kind != TenancyKind.KUBERNETES:
        raise InvalidInput(
            detail="A workspace runs on a Kubernetes tenancy; choose kind kubernetes.",
            errors=[FieldError("body.workspace", f"not available for kind {data.kind.value}")],
        )


def _workspace_workload(data: TenancyCreate) -> dict[str, Any]:
    if data.workspace is None:
        return {}
    return {"preset": data.workspace.preset, "idle_minutes": data.workspace.idle_minutes}


def _check_times(data: TenancyCreate, now: datetime) -> None:
    if data.ends_at is None:
        return
    if data.ends_at.tzinfo is None:
        raise InvalidInput(
            detail="ends_at needs a time zone (e.g. 2026-12-01T18:00:00Z).",
            errors=[FieldError("body.ends_at", "no time zone")],
        )
    if data.ends_at < now + MIN_LEASE:
        raise InvalidInput(
            detail=f"ends_at must be at least {MIN_LEASE.seconds // 60} minutes from now.",
            errors=[FieldError("body.ends_at", "too soon")],
        )


async def _candidate_regions(
    db: AsyncSession,
    org_id: str,
    data: TenancyCreate,
    wanted: tuple[str, ...],
    actor: Actor,
    clock: Clock,
    settings: Settings,
) -> list[str]:
    """The region asked for (checked against the policy now, a refusal recorded), or every
    region the policy allows, cheapest first."""
    if data.region != ANY_REGION:
        if data.region not in await region_currencies(db):
            raise InvalidInput(
                detail=f"No region {data.region!r}.",
                errors=[FieldError("body.region", "unknown region")],
            )
        await residency.check_placement(
            db, org_id=org_id, region_code=data.region, actor_kind=actor.kind,
            actor_id=actor.id, subject="tenancy:new", clock=clock, settings=settings,
        )  # fmt: skip
        return [data.region]
    allowed = await residency.allowed_regions(db, org_id)
    if not allowed:
        raise InsufficientCapacity(
            detail="Your residency policy allows no region this operator runs.",
            extra={"reason": "no-allowed-region", "suggestions": []},
        )
    return await _cheapest_first(db, allowed, data, wanted)


async def _cheapest_first(
    db: AsyncSession, regions: list[str], data: TenancyCreate, wanted: tuple[str, ...]
) -> list[str]:
    """Regions ordered by the price of the asked shape (or the cheapest per-GPU price of the
    asked GPU model or class); regions without a price keep their order, last."""
    prices: dict[str, Decimal] = {}
    for shape in await shapes.list_shapes(db, regions):
        if data.shape is not None and shape.name != data.shape:
            continue
        if data.shape is None and shape.gpu_model not in wanted:
            continue
        gpus = shape.gpus_per_node * shape.node_count * shape.gpu_milli / 1000
        per_gpu = shapes.comparable_price(shape.hourly_price, shape.currency) / Decimal(str(gpus))
        prices[shape.region] = min(prices.get(shape.region, per_gpu), per_gpu)
    if data.shape is not None and not prices:
        raise InvalidInput(
            detail=f"No region your policy allows has a shape {data.shape!r}.",
            errors=[FieldError("body.shape", "not offered in any allowed region")],
        )
    priced = sorted((p, r) for r, p in prices.items())
    unpriced = [r for r in regions if r not in prices] if data.shape is None else []
    return [r for _, r in priced] + unpriced


async def _wanted_models(db: AsyncSession, data: TenancyCreate) -> tuple[str, ...]:
    """The GPU models a request without a shape accepts: its model, or every model of its
    class (a GPU generation such as ``hopper``). Empty for a shape (the shape decides)."""
    given = [f for f in ("shape", "gpu_model", "gpu_class") if getattr(data, f) is not None]
    if len(given) > 1:
        raise InvalidInput(
            detail="Give one of a shape, a GPU model or a GPU class.",
            errors=[FieldError(f"body.{given[0]}", f"given together with {given[1]}")],
        )
    if data.gpu_class is None:
        return (data.gpu_model,) if data.gpu_model is not None else ()
    models = await gpu_models_of_class(db, data.gpu_class)
    if not models:
        raise InvalidInput(
            detail=f"No GPU model of class {data.gpu_class!r} in the catalog.",
            errors=[FieldError("body.gpu_class", "unknown GPU class")],
        )
    return models


async def _spec(
    db: AsyncSession, data: TenancyCreate, wanted: tuple[str, ...], region: str
) -> Spec:
    if data.shape is not None:
        if data.gpus_per_node is not None:
            raise InvalidInput(
                detail="Give a shape, or a GPU model and a GPU count, not both.",
                errors=[FieldError("body.shape", "given together with gpus_per_node")],
            )
        shape = await shapes.get_shape(db, region, data.shape)
        spec = Spec((shape.gpu_model_code,), shape.gpus_per_node, shape.node_count,
                    shape.gpu_milli, shape.name)  # fmt: skip
    else:
        if not wanted or data.gpus_per_node is None:
            missing = "body.gpu_model" if not wanted else "body.gpus_per_node"
            raise InvalidInput(
                detail="Give a shape, or a GPU model (or class) and the GPUs per node.",
                errors=[FieldError(missing, "required without a shape")],
            )
        spec = Spec(wanted, data.gpus_per_node, data.node_count, 1000, None)
    if data.kind is TenancyKind.BARE_METAL and spec.gpu_milli < 1000:
        raise InvalidInput(
            detail="Bare-metal tenancies take whole nodes.",
            errors=[FieldError("body.shape", "fractional shape for bare metal")],
        )
    return spec


async def _within_quota(db: AsyncSession, org_id: str, specs: dict[str, Spec]) -> list[str]:
    """The candidate regions where the request fits the organization's quotas, each spec
    narrowed to the GPU models whose quota it fits; the first refusal when none does."""
    fitting: list[str] = []
    first_refusal: QuotaExceeded | None = None
    for region, spec in specs.items():
        milli = spec.gpus_per_node * spec.node_count * spec.gpu_milli
        allowed = []
        for model in spec.gpu_models:
            try:
                await quotas.check(db, org_id=org_id, region=region, gpu_model=model,
                                   milli=milli)  # fmt: skip
            except QuotaExceeded as refusal:
                first_refusal = first_refusal or refusal
                continue
            allowed.append(model)
        if allowed:
            specs[region] = replace(spec, gpu_models=tuple(allowed))
            fitting.append(region)
    if not fitting and first_refusal is not None:
        raise first_refusal
    return fitting


def _request(kind: TenancyKind, spec: Spec, regions: Sequence[str]) -> Request:
    return Request(
        regions=tuple(regions), gpu_models=spec.gpu_models, gpu_count=spec.gpus_per_node,
        node_count=spec.node_count, gpu_milli=spec.gpu_milli,
        whole_node=kind is TenancyKind.BARE_METAL,
    )  # fmt: skip


async def _place_and_claim(
    db: AsyncSession,
    kind: TenancyKind,
    specs: dict[str, Spec],
    regions: list[str],
    who: Grantee,
    *,
    returning: Sequence[Share] = (),
) -> tuple[Placement, dict[str, NodeCapacity], datetime | None]:
    """Place in the first region (in order) with room, and claim the GPUs; a claim lost to
    a concurrent request is retried against fresh capacity. Pool nodes closed to the
    grantee are left out; the third value is when the pool window used (if any) ends."""
    await claims.lock_regions(db, regions)  # before reading capacity: the reads are fresh
    models = sorted({m for r in regions for m in specs[r].gpu_models})
    nodes = {n.id: n for n in await capacity_nodes(db, regions=regions, gpu_models=models)}
    pools = await gating.gate(db, list(nodes), who.org_id, who.project_id, who.at)
    for _ in range(MAX_CLAIM_ATTEMPTS):
        states = await claims.free_state(db, list(nodes.values()), returning=returning)
        open_states = [s for s in states if s.id not in pools.closed]
        decision = _first_fit(kind, specs, regions, open_states)
        if not isinstance(decision, Placement):
            if pools.closed and isinstance(_first_fit(kind, specs, regions, states), Placement):
                raise _pool_problem(pools)
            requests = [_request(kind, specs[r], [r]) for r in regions]
            open_nodes = [n for n in nodes.values() if n.id not in pools.closed]
            forecast = await when_it_fits(db, open_nodes, requests)
            raise _capacity_problem(decision, regions, forecast)
        shares = sorted(_shares(decision, nodes), key=lambda s: s.gpu_id)
        savepoint = await db.begin_nested()
        if await claims.take(db, shares):
            await savepoint.commit()
            return decision, nodes, pools.lease_end(decision.node_ids)
        await savepoint.rollback()
    raise InsufficientCapacity(
        detail="Capacity kept changing while placing this request; try again.",
        extra={"reason": "contention", "suggestions": []},
    )


def _first_fit(
    kind: TenancyKind, specs: dict[str, Spec], regions: Sequence[str], states: list[NodeState]
) -> Placement | Refusal | None:
    """The placement in the first region (in order) with room, else the first refusal."""
    refusal: Refusal | None = None
    for region in regions:
        decision = place(
            [s for s in states if s.region == region], _request(kind, specs[region], [region])
        )
        if isinstance(decision, Placement):
            return decision
        refusal = refusal or decision
    return refusal


def _pool_problem(pools: gating.Gate) -> InsufficientCapacity:
    """The request fits only on pool nodes not open to the caller now: say when they are."""
    closed = {p.name: p.opens_at for p in pools.closed.values()}
    opening = sorted((at, name) for name, at in closed.items() if at is not None)
    if opening:
        at, name = opening[0]
        detail = (f"The free capacity that fits is in pool {name!r}, which is not open to "
                  f"your project now; it opens to you at {at.isoformat()}.")  # fmt: skip
    else:
        detail = ("The free capacity that fits is held in pools with no window for your "
                  "project in the coming week.")  # fmt: skip
    return InsufficientCapacity(
        detail=detail,
        extra={"reason": "pool-closed", "suggestions": [],
               "opens_at": opening[0][0].isoformat() if opening else None},
    )  # fmt: skip


def _capped(ends_at: datetime | None, pool_end: datetime | None) -> datetime | None:
    """A lease on pool nodes ends when the pool window does, if not earlier."""
    if pool_end is None:
        return ends_at
    return pool_end if ends_at is None else min(ends_at, pool_end)


def _capacity_problem(
    refusal: Refusal | None, regions: Sequence[str], forecast: Forecast | None
) -> InsufficientCapacity:
    later = [forecast.suggestion()] if forecast is not None else []
    if refusal is None:
        return InsufficientCapacity(
            detail=f"No capacity in {', '.join(regions)}.",
            extra={"reason": "insufficient-capacity", "suggestions": later},
        )
    return InsufficientCapacity(
        detail=refusal.detail,
        extra={"reason": refusal.reason, "suggestions": [*refusal.suggestions, *later]},
    )


def _shares(placement: Placement, nodes: dict[str, NodeCapacity]) -> list[Share]:
    result = []
    for slot in placement.slots:
        node = nodes[slot.node_id]
        gpu = next(g for g in node.gpus if g.index == slot.gpu_index)
        result.append(Share(gpu.id, node.id, slot.milli))
    return result


def _add_allocations(
    db: AsyncSession,
    tenancy_id: str,
    placement: Placement,
    nodes: dict[str, NodeCapacity],
    at: datetime,
) -> None:
    for slot, share in zip(placement.slots, _shares(placement, nodes), strict=True):
        db.add(
            GpuAllocation(
                id=new_id("gal"), tenancy_id=tenancy_id, node_id=share.node_id,
                gpu_id=share.gpu_id, gpu_index=slot.gpu_index, milli=share.milli,
                allocated_at=at, released_at=None,
            )
        )  # fmt: skip


def _hostnames(placement: Placement, nodes: dict[str, NodeCapacity]) -> list[str]:
    return [nodes[n].hostname for n in placement.node_ids]


# --- read ----------------------------------------------------------------------------------


async def list_tenancies(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    page: PageRequest,
    *,
    state: str | None = None,
    kind: str | None = None,
    region: str | None = None,
) -> Page[TenancyRead]:
    rows = await repository.tenant_tenancies(
        db, scope, org_id, page, state=state, kind=kind, region=region
    )
    result = make_page(rows, page, key=lambda t: t.id)
    return Page(items=await tenancy_reads(db, result.items), next_cursor=result.next_cursor)


async def names(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_ids: Sequence[str]
) -> dict[str, str]:
    """Id -> name of the given tenancies the caller may see, in one query."""
    return await repository.tenant_tenancy_names(db, scope, org_id, tenancy_ids)


async def spans(db: AsyncSession, scope: TenantScope, org_id: str, limit: int) -> list[TenancySpan]:
    """The newest ``limit`` tenancies the caller may see, as their summary and charts need
    them (one query, no allocations read)."""
    rows = await repository.tenant_tenancy_spans(db, scope, org_id, limit)
    return [
        TenancySpan(state=r.state, region=r.region_code, gpu_count=r.gpus_per_node * r.node_count,
                    simulated=r.simulated, created_at=r.created_at, released_at=r.released_at)
        for r in rows
    ]  # fmt: skip


async def get(db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str) -> TenancyRead:
    return await tenancy_read(db, await repository.tenant_tenancy(db, scope, org_id, tenancy_id))


async def events(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str, page: PageRequest
) -> Page[TenancyEventRead]:
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id)
    rows = await repository.events_of(db, tenancy.id, page)
    result = make_page(rows, page, key=lambda e: e.id)
    return Page(
        items=[
            TenancyEventRead(id=e.id, at=e.at, kind=e.kind, from_state=e.from_state,
                             to_state=e.to_state, detail=e.detail, actor=e.actor)
            for e in result.items
        ],
        next_cursor=result.next_cursor,
    )  # fmt: skip


# --- change --------------------------------------------------------------------------------


async def release(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    tenancy_id: str,
    *,
    clock: Clock,
    settings: Settings,
) -> TenancyRead:
    scope.require(org_id, Permission.TENANCIES_WRITE)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id, for_update=True)
    _refuse_managed(tenancy, "released")
    if tenancy.state in (TenancyState.RELEASING, TenancyState.CLEANING, TenancyState.RELEASED):
        return await tenancy_read(db, tenancy)  # asking twice is not an error
    await begin_release(db, tenancy, actor=actor_from(scope), reason="release requested",
                        at=clock.now(), settings=settings)  # fmt: skip
    return await tenancy_read(db, tenancy)


def _refuse_managed(tenancy: Tenancy, verb: str) -> None:
    if tenancy.managed_by is not None:
        raise Conflict(detail=f"This tenancy belongs to {tenancy.managed_by} and is {verb} "
                              "through it (scale or delete the endpoint).")  # fmt: skip


async def begin_release(
    db: AsyncSession,
    tenancy: Tenancy,
    *,
    actor: Actor,
    reason: str,
    at: datetime,
    settings: Settings,
    bill_until: datetime | None = None,
) -> None:
    """Stop billing (now, or at ``bill_until``) and hand the tenancy to the reconciler to
    take down and clean."""
    await accrue(db, tenancy, until=min(at, bill_until or at))
    tenancy.release_requested_at = at
    tenancy.next_attempt_at = at
    tenancy.attempts = 0
    await transition(db, tenancy, TenancyState.RELEASING, detail=reason, actor=actor, at=at,
                     ledger_region=settings.region)  # fmt: skip


async def resize(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    tenancy_id: str,
    data: TenancyResize,
    *,
    clock: Clock,
    settings: Settings,
    drivers: Drivers,
) -> TenancyRead:
    scope.require(org_id, Permission.TENANCIES_WRITE)
    now = clock.now()
    await quotas.lock_org(db, org_id, now)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id, for_update=True)
    _refuse_managed(tenancy, "resized")
    if tenancy.state != TenancyState.ACTIVE or tenancy.applied_generation != tenancy.generation:
        raise Conflict(detail=f"Only an active tenancy with no resize under way can be resized; "
                              f"this one is {tenancy.state}.")  # fmt: skip
    driver = drivers.for_tenancy(tenancy.region_code, TenancyKind(tenancy.kind))
    if not isinstance(driver, Resizable) or tenancy.kind == TenancyKind.BARE_METAL:
        raise Conflict(detail=f"{tenancy.kind} tenancies cannot be resized in place; create a "
                              "new tenancy of the size you need and release this one.")  # fmt: skip
    node_count = data.node_count or tenancy.node_count
    model = data.gpu_model or tenancy.gpu_model_code
    milli = data.gpu_milli or tenancy.gpu_milli
    if (data.gpus_per_node, node_count, model, milli) == (
        tenancy.gpus_per_node, tenancy.node_count, tenancy.gpu_model_code, tenancy.gpu_milli,
    ):  # fmt: skip
        return await tenancy_read(db, tenancy)
    if milli < 1000 and (data.gpus_per_node, node_count) != (1, 1):
        raise InvalidInput(
            detail="A share of a GPU is for one GPU on one node.",
            errors=[FieldError("body.gpu_milli", "below 1000 with several GPUs")],
        )
    if not await capacity_nodes(db, regions=[tenancy.region_code], gpu_models=[model]):
        raise InvalidInput(
            detail=f"Region {tenancy.region_code} has no {model} GPUs.",
            errors=[FieldError("body.gpu_model", "not offered in the region")],
        )
    spec = Spec((model,), data.gpus_per_node, node_count, milli, None)
    await quotas.check(db, org_id=org_id, region=tenancy.region_code, gpu_model=model,
                       milli=data.gpus_per_node * node_count * milli,
                       excluding=tenancy.id)  # fmt: skip
    current = (await repository.live_allocations(db, [tenancy.id])).get(tenancy.id, [])
    old_shares = [Share(a.gpu_id, a.node_id, a.milli) for a in current]
    await accrue(db, tenancy, until=now)  # the old size is billed up to now
    # The region lock before the give-back: a create holding it may wait for these GPUs.
    await claims.lock_regions(db, [tenancy.region_code])
    await claims.give_back(db, old_shares)
    who = Grantee(org_id, tenancy.project_id, now)
    placement, nodes, pool_end = await _place_and_claim(
        db, TenancyKind(tenancy.kind), {tenancy.region_code: spec}, [tenancy.region_code], who
    )
    tenancy.ends_at = _capped(tenancy.ends_at, pool_end)
    await db.execute(
        update(GpuAllocation)
        .where(GpuAllocation.id.in_([a.id for a in current]))
        .values(released_at=now)
    )
    _add_allocations(db, tenancy.id, placement, nodes, now)
    tenancy.facts = {
        **tenancy.facts,
        "resized_from": _size_label(tenancy.node_count, tenancy.gpus_per_node,
                                    tenancy.gpu_model_code, tenancy.gpu_milli),
    }  # fmt: skip
    tenancy.gpus_per_node = data.gpus_per_node
    tenancy.node_count = node_count
    tenancy.gpu_model_code = model
    tenancy.gpu_milli = milli
    tenancy.shape = None
    tenancy.generation += 1
    tenancy.next_attempt_at = now
    tenancy.attempts = 0
    note(db, tenancy, "step",
         f"resize to {_size_label(node_count, data.gpus_per_node, model, milli)} on "
         f"{', '.join(_hostnames(placement, nodes))} requested",
         actor_from(scope), now)  # fmt: skip
    await db.flush()
    return await tenancy_read(db, tenancy)


def _size_label(nodes: int, gpus: int, model: str, milli: int) -> str:
    share = "" if milli == 1000 else f" at {milli / 10:g}%"
    return f"{nodes}x{gpus} {model}{share}"


async def set_schedule(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    tenancy_id: str,
    data: TenancySchedule,
    *,
    clock: Clock,
) -> TenancyRead:
    """Turn automatic release after idle time on or off (the reconciler watches it)."""
    scope.require(org_id, Permission.TENANCIES_WRITE)
    # Read before the row lock what the change leaves alone: every statement run while it
    # is held makes concurrent changes of the tenancy (and the reconciler) wait longer.
    holdings = await repository.tenant_holdings(db, scope, org_id, tenancy_id)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id, for_update=True)
    _refuse_managed(tenancy, "rescheduled")
    if tenancy.state not in (TenancyState.ACTIVE, TenancyState.PROVISIONING,
                             TenancyState.REQUESTED, TenancyState.PLACING):  # fmt: skip
        raise Conflict(detail=f"This tenancy is {tenancy.state}; nothing to schedule.")
    now = clock.now()
    tenancy.idle_release_minutes = data.idle_release_minutes
    tenancy.idle_since = None
    tenancy.next_attempt_at = now if data.idle_release_minutes else tenancy.next_attempt_at
    minutes = data.idle_release_minutes
    detail = f"release after {minutes} idle minutes" if minutes else "idle release turned off"
    note(db, tenancy, "step", detail, actor_from(scope), now)
    return reads_holding([tenancy], holdings)[0]
