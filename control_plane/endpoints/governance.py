"""Model governance: an organization may require a validator's approval (weights hash,
licence, where the weights live) before a model version serves production traffic.
Decisions land in the ledger through the request that makes them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.endpoints import repository
from control_plane.endpoints.models import ModelGovernance
from control_plane.endpoints.reads import endpoint_read, governance_of, governance_row
from control_plane.endpoints.schemas import (
    Approval,
    ApprovalDecision,
    EndpointRead,
    GovernanceRead,
    GovernanceSet,
)
from control_plane.endpoints.service import Deps, converge_now, note
from control_plane.errors import Conflict, Forbidden, NotFound
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.tenancies.service import actor_from


async def get_governance(db: AsyncSession, scope: TenantScope, org_id: str) -> GovernanceRead:
    scope.require(org_id, Permission.ENDPOINTS_READ)
    return await governance_of(db, org_id)


async def set_governance(
    db: AsyncSession, scope: TenantScope, org_id: str, data: GovernanceSet, deps: Deps
) -> GovernanceRead:
    """Only a validator may switch the approval requirement on or off."""
    scope.require(org_id, Permission.MODELS_VALIDATE)
    now = deps.clock.now()
    label = actor_from(scope).label[:80]
    row = await governance_row(db, org_id)
    if row is None:
        db.add(
            ModelGovernance(
                org_id=org_id,
                require_approval=data.require_approval,
                updated_by=label,
                updated_at=now,
            )
        )
    else:
        row.require_approval, row.updated_by, row.updated_at = data.require_approval, label, now
    await db.flush()
    return await governance_of(db, org_id)


async def decide(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    ref: str,
    number: int,
    data: ApprovalDecision,
    deps: Deps,
) -> EndpointRead:
    """Approve or reject a pending version. The person who added a version cannot approve
    it (four eyes); an approved version starts serving its share of the traffic."""
    scope.require(org_id, Permission.MODELS_VALIDATE)
    endpoint = await repository.tenant_endpoint(db, scope, org_id, ref, for_update=True)
    versions = await repository.versions_of(db, [endpoint.id])
    version = next((v for v in versions if v.number == number), None)
    if version is None:
        raise NotFound(detail=f"No version {number} on this endpoint.")
    if version.approval != Approval.PENDING:
        raise Conflict(detail=f"Version {number} is {version.approval}, not pending approval.")
    actor = actor_from(scope)
    if version.created_by == actor.label[:80]:
        raise Forbidden(detail="A version is approved by someone other than who added it.")
    now = deps.clock.now()
    approve = data.decision == "approve"
    version.approval = (Approval.APPROVED if approve else Approval.REJECTED).value
    version.decided_by, version.decided_at = actor.label[:80], now
    version.decision_note = data.note or None
    if not approve:
        version.retired_at = now
    note(
        db,
        endpoint,
        "approval",
        f"version {number} {'approved' if approve else 'rejected'} (weights sha256 "
        f"{version.weights_sha256}, licence {version.license}, store {version.store_region})"
        + (f": {data.note}" if data.note else ""),
        actor,
        now,
    )
    await converge_now(db, endpoint, versions, actor, deps)
    return await endpoint_read(db, endpoint, deps.settings)
