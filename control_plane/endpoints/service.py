"""Endpoint rules: create (residency of the region and of the model's store, governance,
replicas placed like tenancies, all in one transaction), versions and traffic splits,
approvals, scaling, delete. Nothing here calls Triton; the replicas' driver does, through
the tenancies reconciler. Services never commit; the request does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints import replicas, repository
from control_plane.endpoints.models import Endpoint, EndpointEvent, EndpointVersion
from control_plane.endpoints.reads import endpoint_read, endpoint_reads, governance_of
from control_plane.endpoints.schemas import (
    Approval,
    EndpointCreate,
    EndpointEventRead,
    EndpointRead,
    ScaleSet,
    TrafficSplit,
    VersionCreate,
)
from control_plane.endpoints.stores import ModelSource, resolve
from control_plane.errors import Conflict, FieldError, InvalidInput
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.ids import new_id
from control_plane.inventory.capacity import region_currencies
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.service import actor_from
from control_plane.tenancies.timeline import Actor

__all__ = ["Deps", "create", "delete", "events", "get", "list_endpoints", "scale"]


@dataclass(frozen=True, slots=True)
class Deps:
    clock: Clock
    settings: Settings
    drivers: Drivers


def note(
    db: AsyncSession, endpoint: Endpoint, kind: str, detail: str, actor: Actor, at: datetime
) -> None:
    db.add(
        EndpointEvent(
            id=new_id("epe"),
            endpoint_id=endpoint.id,
            at=at,
            kind=kind,
            detail=detail[:1000],
            actor=actor.label[:80],
        )
    )


async def _source(
    db: AsyncSession, org_id: str, uri: str, region: str, actor: Actor, deps: Deps
) -> ModelSource:
    """The model's store region, cleared by the residency policy for holding the weights
    and, when the replicas run in another jurisdiction, for moving them there."""
    regions = list(await region_currencies(db))
    source = resolve(uri, deps.settings, regions)
    subject = f"model:{source.uri}"
    await residency.check_placement(
        db,
        org_id=org_id,
        region_code=source.region,
        actor_kind=actor.kind,
        actor_id=actor.id,
        subject=subject,
        clock=deps.clock,
        settings=deps.settings,
    )
    if source.region != region:
        target = await residency.region_facts(db, region)
        await residency.check_export(
            db,
            org_id=org_id,
            region_code=source.region,
            destination_jurisdiction=target.jurisdiction,
            actor_kind=actor.kind,
            actor_id=actor.id,
            subject=subject,
            clock=deps.clock,
            settings=deps.settings,
        )
    return source


def _new_version(
    endpoint: Endpoint,
    number: int,
    source: ModelSource,
    percent: int,
    approval: Approval,
    actor: Actor,
    at: datetime,
) -> EndpointVersion:
    return EndpointVersion(
        id=new_id("epv"),
        endpoint_id=endpoint.id,
        number=number,
        source_uri=source.uri,
        store_region=source.region,
        weights_sha256=source.weights_sha256,
        license=source.license,
        served_model=f"{endpoint.name}-v{number}",
        approval=approval.value,
        decided_by=None,
        decided_at=None,
        decision_note=None,
        traffic_percent=percent,
        io={},
        created_by=actor.label[:80],
        created_at=at,
        retired_at=None,
    )


async def create(
    db: AsyncSession, scope: TenantScope, org_id: str, data: EndpointCreate, deps: Deps
) -> EndpointRead:
    scope.require(org_id, Permission.ENDPOINTS_WRITE)
    _check_sizes(data.min_replicas, data.max_replicas, "body.max_replicas")
    if data.gpu_milli < 1000 and data.gpus != 1:
        raise InvalidInput(
            detail="A fractional replica takes a share of one GPU: leave gpus at 1.",
            errors=[FieldError("body.gpus", "must be 1 with gpu_milli below 1000")],
        )
    now = deps.clock.now()
    actor = actor_from(scope)
    if data.region not in await region_currencies(db):
        raise InvalidInput(
            detail=f"No region {data.region!r}.",
            errors=[FieldError("body.region", "unknown region")],
        )
    await residency.check_placement(
        db,
        org_id=org_id,
        region_code=data.region,
        actor_kind=actor.kind,
        actor_id=actor.id,
        subject="endpoint:new",
        clock=deps.clock,
        settings=deps.settings,
    )
    source = await _source(db, org_id, data.model_uri, data.region, actor, deps)
    if await repository.live_name_taken(db, org_id, data.name):
        raise Conflict(detail=f"An endpoint named {data.name!r} already exists.")
    governed = (await governance_of(db, org_id)).require_approval
    endpoint = Endpoint(
        id=new_id("ep"),
        org_id=org_id,
        project_id=scope.project_id or data.project_id,
        name=data.name,
        region_code=data.region,
        backend=data.backend.value,
        gpu_model_code=data.gpu_model,
        gpus_per_replica=data.gpus,
        gpu_milli=data.gpu_milli,
        min_replicas=data.min_replicas,
        max_replicas=data.max_replicas,
        desired_replicas=max(data.min_replicas, 1) if data.max_replicas else 0,
        target_tokens_per_s=data.target_tokens_per_s,
        target_queue_per_replica=data.target_queue_per_replica,
        scale_to_zero_after_s=data.scale_to_zero_after_s,
        created_by=actor.label[:80],
        created_at=now,
        updated_at=now,
        deleted_at=None,
    )
    db.add(endpoint)
    await db.flush()
    approval = Approval.PENDING if governed else Approval.NOT_REQUIRED
    version = _new_version(endpoint, 1, source, 100, approval, actor, now)
    db.add(version)
    note(
        db,
        endpoint,
        "created",
        f"endpoint created in {data.region}: version 1 from {source.uri} "
        f"(store in {source.region}, weights sha256 {source.weights_sha256[:12]}...)",
        actor,
        now,
    )
    if governed:
        note(db, endpoint, "approval", "version 1 awaits a validator's approval", actor, now)
    await converge_now(db, endpoint, [version], actor, deps)
    return await endpoint_read(db, endpoint, deps.settings)


def _check_sizes(low: int, high: int, field: str) -> None:
    if low > high:
        raise InvalidInput(
            detail="min_replicas cannot exceed max_replicas.",
            errors=[FieldError(field, "below min_replicas")],
        )


async def converge_now(
    db: AsyncSession,
    endpoint: Endpoint,
    versions: list[EndpointVersion],
    actor: Actor,
    deps: Deps,
) -> None:
    changes = await replicas.converge(
        db,
        endpoint,
        versions,
        actor=actor,
        clock=deps.clock,
        settings=deps.settings,
        drivers=deps.drivers,
    )
    now = deps.clock.now()
    for change in changes:
        note(db, endpoint, "replicas", change, actor, now)
    await db.flush()


async def converge_by_id(
    db: AsyncSession, endpoint_id: str, actor: Actor, deps: Deps
) -> Endpoint | None:
    """Converge one endpoint's replicas (the autoscaler and the cold-start path)."""
    endpoint = await repository.endpoint_by_id(db, endpoint_id, for_update=True)
    if endpoint is None:
        return None
    await converge_now(db, endpoint, await repository.versions_of(db, [endpoint.id]), actor, deps)
    return endpoint


# --- read ----------------------------------------------------------------------------------


async def list_endpoints(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest, settings: Settings
) -> Page[EndpointRead]:
    rows = await repository.tenant_endpoints(db, scope, org_id, page)
    result = make_page(rows, page, key=lambda e: e.id)
    return Page(
        items=await endpoint_reads(db, result.items, settings),
        next_cursor=result.next_cursor,
    )


async def get(
    db: AsyncSession, scope: TenantScope, org_id: str, ref: str, settings: Settings
) -> EndpointRead:
    return await endpoint_read(
        db, await repository.tenant_endpoint(db, scope, org_id, ref), settings
    )


async def events(
    db: AsyncSession, scope: TenantScope, org_id: str, ref: str, page: PageRequest
) -> Page[EndpointEventRead]:
    endpoint = await repository.tenant_endpoint(db, scope, org_id, ref)
    result = make_page(await repository.events_of(db, endpoint.id, page), page, key=lambda e: e.id)
    return Page(
        items=[
            EndpointEventRead(id=e.id, at=e.at, kind=e.kind, detail=e.detail, actor=e.actor)
            for e in result.items
        ],
        next_cursor=result.next_cursor,
    )


# --- change --------------------------------------------------------------------------------


async def scale(
    db: AsyncSession, scope: TenantScope, org_id: str, ref: str, data: ScaleSet, deps: Deps
) -> EndpointRead:
    scope.require(org_id, Permission.ENDPOINTS_WRITE)
    _check_sizes(data.min_replicas, data.max_replicas, "body.max_replicas")
    endpoint = await repository.tenant_endpoint(db, scope, org_id, ref, for_update=True)
    wanted = data.replicas if data.replicas is not None else endpoint.desired_replicas
    if not data.min_replicas <= wanted <= data.max_replicas:
        if data.replicas is not None:
            raise InvalidInput(
                detail="replicas must lie within min_replicas..max_replicas.",
                errors=[FieldError("body.replicas", "out of range")],
            )
        wanted = min(max(wanted, data.min_replicas), data.max_replicas)
    now = deps.clock.now()
    actor = actor_from(scope)
    endpoint.min_replicas, endpoint.max_replicas = data.min_replicas, data.max_replicas
    endpoint.desired_replicas = wanted
    endpoint.updated_at = now
    note(
        db,
        endpoint,
        "scale",
        f"replicas {data.min_replicas}..{data.max_replicas}, now {wanted}",
        actor,
        now,
    )
    await converge_now(db, endpoint, await repository.versions_of(db, [endpoint.id]), actor, deps)
    return await endpoint_read(db, endpoint, deps.settings)


async def add_version(
    db: AsyncSession, scope: TenantScope, org_id: str, ref: str, data: VersionCreate, deps: Deps
) -> EndpointRead:
    scope.require(org_id, Permission.ENDPOINTS_WRITE)
    endpoint = await repository.tenant_endpoint(db, scope, org_id, ref, for_update=True)
    actor = actor_from(scope)
    source = await _source(db, org_id, data.model_uri, endpoint.region_code, actor, deps)
    versions = await repository.versions_of(db, [endpoint.id])
    live = [v for v in versions if v.retired_at is None]
    if len(live) >= 2:
        raise Conflict(
            detail="An endpoint splits traffic between two versions at most: "
            "retire one first (set its share to 0 with a split)."
        )
    now = deps.clock.now()
    governed = (await governance_of(db, org_id)).require_approval
    approval = Approval.PENDING if governed else Approval.NOT_REQUIRED
    number = max((v.number for v in versions), default=0) + 1
    version = _new_version(endpoint, number, source, 0, approval, actor, now)
    db.add(version)
    versions.append(version)
    if data.traffic_percent:
        _apply_split([*live, version], {version.number: data.traffic_percent})
    note(
        db,
        endpoint,
        "version",
        f"version {number} from {source.uri} takes {version.traffic_percent}% of traffic"
        + (" once approved" if governed else ""),
        actor,
        now,
    )
    endpoint.updated_at = now
    await converge_now(db, endpoint, versions, actor, deps)
    return await endpoint_read(db, endpoint, deps.settings)


def _apply_split(live: list[EndpointVersion], fixed: dict[int, int]) -> None:
    """Give the versions in ``fixed`` their share; the other (at most one) gets the rest."""
    rest = 100 - sum(fixed.values())
    if rest < 0:
        raise InvalidInput(
            detail="Traffic shares add up to more than 100%.",
            errors=[FieldError("body.traffic_percent", "over 100")],
        )
    for version in live:
        version.traffic_percent = fixed.get(version.number, rest)


async def split(
    db: AsyncSession, scope: TenantScope, org_id: str, ref: str, data: TrafficSplit, deps: Deps
) -> EndpointRead:
    scope.require(org_id, Permission.ENDPOINTS_WRITE)
    endpoint = await repository.tenant_endpoint(db, scope, org_id, ref, for_update=True)
    versions = await repository.versions_of(db, [endpoint.id])
    live = {str(v.number): v for v in versions if v.retired_at is None}
    unknown = sorted(set(data.percent) - set(live))
    if unknown:
        raise InvalidInput(
            detail=f"No live version {unknown[0]} on this endpoint.",
            errors=[FieldError(f"body.percent.{unknown[0]}", "unknown version")],
        )
    shares = {n: data.percent.get(n, 0) for n in live}
    if sum(shares.values()) != 100:
        raise InvalidInput(
            detail="Traffic shares must add up to 100%.",
            errors=[FieldError("body.percent", "does not add up to 100")],
        )
    now = deps.clock.now()
    actor = actor_from(scope)
    for number, version in live.items():
        version.traffic_percent = shares[number]
        if shares[number] == 0 and len(live) > 1:
            version.retired_at = now  # a version with no traffic is unloaded
    endpoint.updated_at = now
    note(
        db,
        endpoint,
        "traffic",
        ", ".join(f"v{n}: {p}%" for n, p in sorted(shares.items())),
        actor,
        now,
    )
    await converge_now(db, endpoint, versions, actor, deps)
    return await endpoint_read(db, endpoint, deps.settings)


async def delete(
    db: AsyncSession, scope: TenantScope, org_id: str, ref: str, deps: Deps
) -> EndpointRead:
    scope.require(org_id, Permission.ENDPOINTS_WRITE)
    endpoint = await repository.tenant_endpoint(
        db, scope, org_id, ref, for_update=True, include_deleted=True
    )
    if endpoint.deleted_at is not None:  # deleting twice is not an error (a retry)
        return await endpoint_read(db, endpoint, deps.settings)
    now = deps.clock.now()
    actor = actor_from(scope)
    endpoint.deleted_at = now
    endpoint.desired_replicas = 0
    endpoint.updated_at = now
    note(db, endpoint, "deleted", "endpoint deleted: its replicas are released", actor, now)
    await converge_now(db, endpoint, await repository.versions_of(db, [endpoint.id]), actor, deps)
    return await endpoint_read(db, endpoint, deps.settings)
