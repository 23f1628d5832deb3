"""How an endpoint reads in the API and portal: its versions, replicas and state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.endpoints import repository
from control_plane.endpoints.models import Endpoint, EndpointVersion, ModelGovernance
from control_plane.endpoints.replicas import is_ready, is_serving, owner_of
from control_plane.endpoints.schemas import (
    Approval,
    Backend,
    EndpointRead,
    EndpointState,
    GovernanceRead,
    ReplicaRead,
    VersionRead,
)
from control_plane.settings import Settings
from control_plane.tenancies import managed
from control_plane.tenancies.lifecycle import TenancyState


def version_read(v: EndpointVersion) -> VersionRead:
    return VersionRead(
        id=v.id,
        number=v.number,
        model_uri=v.source_uri,
        store_region=v.store_region,
        weights_sha256=v.weights_sha256,
        license=v.license,
        served_model=v.served_model,
        approval=Approval(v.approval),
        decided_by=v.decided_by,
        decided_at=v.decided_at,
        decision_note=v.decision_note,
        traffic_percent=v.traffic_percent,
        serving=is_serving(v) and v.traffic_percent > 0,
        io=dict(v.io),
        created_by=v.created_by,
        created_at=v.created_at,
    )


def state_of(
    endpoint: Endpoint, versions: list[EndpointVersion], live: list[managed.Replica]
) -> EndpointState:
    if endpoint.deleted_at is not None:
        return EndpointState.DELETED
    if not any(is_serving(v) for v in versions):
        return EndpointState.AWAITING_APPROVAL
    if any(is_ready(r) for r in live):
        return EndpointState.READY
    if endpoint.desired_replicas == 0:
        return EndpointState.SCALED_TO_ZERO
    if any(r.last_error for r in live):
        return EndpointState.DEGRADED
    return EndpointState.DEPLOYING


async def endpoint_read(db: AsyncSession, endpoint: Endpoint, settings: Settings) -> EndpointRead:
    return (await endpoint_reads(db, [endpoint], settings))[0]


async def endpoint_reads(
    db: AsyncSession, endpoints: Sequence[Endpoint], settings: Settings
) -> list[EndpointRead]:
    """Many endpoints as read, in their order, in two queries whatever their number (their
    versions, then their replicas)."""
    versions: dict[str, list[EndpointVersion]] = {}
    for version in await repository.versions_of(db, [e.id for e in endpoints]):
        versions.setdefault(version.endpoint_id, []).append(version)
    replicas: dict[str, list[managed.Replica]] = {}
    for replica in await managed.replicas_of(db, [owner_of(e.id) for e in endpoints]):
        replicas.setdefault(replica.owner, []).append(replica)
    base = settings.base_url.rstrip("/")
    return [
        _read(e, versions.get(e.id, []), replicas.get(owner_of(e.id), []), base) for e in endpoints
    ]


def _read(
    endpoint: Endpoint, versions: list[EndpointVersion], live: list[managed.Replica], base: str
) -> EndpointRead:
    return EndpointRead(
        id=endpoint.id,
        org_id=endpoint.org_id,
        project_id=endpoint.project_id,
        name=endpoint.name,
        region=endpoint.region_code,
        backend=Backend(endpoint.backend),
        gpu_model=endpoint.gpu_model_code,
        gpus_per_replica=endpoint.gpus_per_replica,
        gpu_milli=endpoint.gpu_milli,
        min_replicas=endpoint.min_replicas,
        max_replicas=endpoint.max_replicas,
        desired_replicas=endpoint.desired_replicas,
        ready_replicas=sum(1 for r in live if is_ready(r)),
        target_tokens_per_s=endpoint.target_tokens_per_s,
        target_queue_per_replica=endpoint.target_queue_per_replica,
        scale_to_zero_after_s=endpoint.scale_to_zero_after_s,
        state=state_of(endpoint, versions, live),
        versions=[version_read(v) for v in versions if v.retired_at is None],
        replicas=[
            ReplicaRead(
                tenancy_id=r.tenancy_id, state=r.state, ready=is_ready(r), last_error=r.last_error
            )
            for r in live
            if r.state != TenancyState.RELEASED
        ],
        url=f"{base}/v1",
        created_by=endpoint.created_by,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


async def governance_of(db: AsyncSession, org_id: str) -> GovernanceRead:
    row = await db.get(ModelGovernance, org_id)
    if row is None:
        return GovernanceRead(
            org_id=org_id, require_approval=False, updated_by=None, updated_at=None
        )
    return GovernanceRead(
        org_id=org_id,
        require_approval=row.require_approval,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def governance_row(db: AsyncSession, org_id: str) -> ModelGovernance | None:
    query = select(ModelGovernance).where(ModelGovernance.org_id == org_id).with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class EndpointSize:
    """What waste analysis reads about a live endpoint."""

    id: str
    org_id: str
    name: str
    region: str
    gpu_model: str
    gpus_per_replica: int
    gpu_milli: int
    replicas: int
    min_replicas: int
    max_replicas: int
    target_tokens_per_s: int
    created_at: datetime


async def endpoint_sizes(db: AsyncSession, org_ids: Sequence[str] | None) -> list[EndpointSize]:
    query = select(Endpoint).where(Endpoint.deleted_at.is_(None))
    if org_ids is not None:
        query = query.where(Endpoint.org_id.in_(list(org_ids)))
    return [
        EndpointSize(e.id, e.org_id, e.name, e.region_code, e.gpu_model_code, e.gpus_per_replica,
                     e.gpu_milli, e.desired_replicas, e.min_replicas, e.max_replicas,
                     e.target_tokens_per_s, e.created_at)
        for e in (await db.execute(query.order_by(Endpoint.id))).scalars()
    ]  # fmt: skip
