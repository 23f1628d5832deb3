"""An endpoint's replicas: tenancies of kind ``inference`` it owns. Converging makes their
number and workload match what the endpoint wants; the tenancies reconciler does the rest
(placement happened at create, in the same transaction, like any tenancy)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints.models import Endpoint, EndpointVersion
from control_plane.endpoints.schemas import Approval
from control_plane.endpoints.stores import path_of
from control_plane.settings import Settings
from control_plane.tenancies import managed
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.schemas import TenancyCreate
from control_plane.tenancies.service import Managed, create_managed
from control_plane.tenancies.timeline import Actor

__all__ = ["converge", "is_serving", "owner_of", "workload_of"]

SERVABLE = (Approval.NOT_REQUIRED.value, Approval.APPROVED.value)


def owner_of(endpoint_id: str) -> str:
    return f"endpoint:{endpoint_id}"


def is_serving(version: EndpointVersion) -> bool:
    """Loaded on the replicas: live and cleared for production traffic."""
    return version.retired_at is None and version.approval in SERVABLE


def workload_of(endpoint: Endpoint, versions: Sequence[EndpointVersion]) -> dict[str, Any]:
    """What each replica runs: the served versions' model directories, by Triton name."""
    models = [
        {"name": v.served_model, "source": str(path_of(v.source_uri))}
        for v in sorted(versions, key=lambda v: v.number)
        if is_serving(v)
    ]
    return {"endpoint": endpoint.id, "models": models}


def is_ready(replica: managed.Replica) -> bool:
    return replica.state == TenancyState.ACTIVE and not replica.pending_change


async def converge(
    db: AsyncSession,
    endpoint: Endpoint,
    versions: Sequence[EndpointVersion],
    *,
    actor: Actor,
    clock: Clock,
    settings: Settings,
    drivers: Drivers,
) -> list[str]:
    """Create, re-target or release replicas so the endpoint has ``desired_replicas`` of
    them running its served versions; returns what changed, for the timeline."""
    owner = owner_of(endpoint.id)
    live = await managed.replicas_of(db, [owner])
    workload = workload_of(endpoint, versions)
    want = endpoint.desired_replicas if workload["models"] and endpoint.deleted_at is None else 0
    changes: list[str] = []
    # Scale down the replicas that are not serving yet first, then the newest.
    by_preference = sorted(live, key=lambda r: (is_ready(r), r.tenancy_id))
    surplus = by_preference[: max(0, len(live) - want)]
    for replica in surplus:
        if await managed.release(
            db,
            owner,
            replica.tenancy_id,
            reason="endpoint scaled down",
            actor=actor,
            clock=clock,
            settings=settings,
        ):
            changes.append(f"replica {replica.tenancy_id} released")
    for replica in by_preference[len(surplus) :]:
        if dict(replica.workload) != workload and await managed.retarget(
            db, owner, replica.tenancy_id, workload, actor=actor, clock=clock
        ):
            changes.append(f"replica {replica.tenancy_id} loads {_names(workload)}")
    for _ in range(max(0, want - len(live))):
        tenancy = await create_managed(
            db,
            endpoint.org_id,
            endpoint.project_id,
            _replica_request(endpoint),
            Managed(owner=owner, gpu_milli=endpoint.gpu_milli, workload=workload),
            actor=actor,
            clock=clock,
            settings=settings,
            drivers=drivers,
        )
        changes.append(f"replica {tenancy.id} placed on {_where(tenancy.allocations)}")
    return changes


def _replica_request(endpoint: Endpoint) -> TenancyCreate:
    name = f"{endpoint.name[:52].rstrip('-')}-r{secrets.token_hex(3)}"
    return TenancyCreate(
        name=name,
        kind=TenancyKind.INFERENCE,
        region=endpoint.region_code,
        gpu_model=endpoint.gpu_model_code,
        gpus_per_node=endpoint.gpus_per_replica,
        labels={"endpoint": endpoint.name},
    )


def _names(workload: dict[str, Any]) -> str:
    return ", ".join(m["name"] for m in workload["models"]) or "nothing"


def _where(allocations: Sequence[Any]) -> str:
    return (
        ", ".join(
            f"{a.hostname} ({a.gpu_milli / 10:g}% of GPU {a.gpu_indices})" for a in allocations
        )
        or "nothing"
    )
