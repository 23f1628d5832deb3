"""The one check other code calls before an operator touches a tenant's resource.

``require_access`` answers with the grant it used, or a 403 problem. Each successful use is
stored and written to the tenant's ledger chain with the request's justification, so the
tenant and its auditors see every access (access transparency). Refusals are recorded too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Forbidden
from control_plane.identity import organizations
from control_plane.identity.authz import ProviderScope
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.sovereignty.access import repository
from control_plane.sovereignty.access.ledger import record_operator_event
from control_plane.sovereignty.access.lifecycle import ReasonCode, RequestKind, ResourceType
from control_plane.sovereignty.access.models import AccessUse
from control_plane.sovereignty.access.policy import require_allowed_operator
from control_plane.sovereignty.access.schemas import SupportProject, SupportSnapshot


class AccessNotGranted(Forbidden):
    slug = "access-not-granted"
    title = "No approved access grant"


@dataclass(frozen=True)
class AccessGrant:
    """The grant a use went through, and the use it recorded."""

    request_id: str
    org_id: str
    operator_id: str
    kind: RequestKind
    resource_type: ResourceType
    resource_id: str
    reason_code: ReasonCode
    justification: str
    expires_at: datetime
    use_id: str
    ledger_seq: int


async def require_access(
    db: AsyncSession,
    *,
    operator: ProviderScope,
    org_id: str,
    resource_type: ResourceType | str,
    resource_id: str,
    purpose: str,
    clock: Clock,
    settings: Settings,
) -> AccessGrant:
    """The operator's open grant on the resource (approved or break-glass, unexpired, and
    the organization's residency policy still allows the operator's home), with this use
    recorded; else a 403 problem, the refusal also recorded in the tenant's ledger."""
    kind = ResourceType(resource_type)
    operator_id = operator.principal.user_id
    org = await organizations.find_org(db, org_id) if org_id.startswith("org_") else None
    if operator_id is None or org is None:
        raise AccessNotGranted(detail="No approved, unexpired grant covers this resource.")
    await require_allowed_operator(
        db,
        operator=operator,
        org_id=org_id,
        target_type=kind,
        target_id=resource_id,
        clock=clock,
        settings=settings,
    )
    now = clock.now()
    row = await repository.active_grant(
        db,
        org_id=org_id,
        operator_id=operator_id,
        resource_type=kind,
        resource_id=resource_id,
        now=now,
    )
    if row is None or row.expires_at is None:
        await record_operator_event(
            db,
            operator=operator,
            org_id=org_id,
            action="access.use",
            target_type=kind,
            target_id=resource_id,
            outcome="denied",
            decision_ref="no-grant",
            payload={"purpose": purpose},
            clock=clock,
            settings=settings,
        )
        raise AccessNotGranted(
            detail=(
                f"No approved, unexpired grant covers {kind} {resource_id}: request access "
                "and wait for the organization to approve it."
            ),
            commit_anyway=True,  # the refused attempt stays in the tenant's ledger
        )
    entry = await record_operator_event(
        db,
        operator=operator,
        org_id=org_id,
        action="access.use",
        target_type=kind,
        target_id=resource_id,
        outcome="allowed",
        decision_ref=row.justification,
        payload={
            "request_id": row.id,
            "kind": row.kind,
            "reason_code": row.reason_code,
            "purpose": purpose,
            "grant_expires_at": row.expires_at.isoformat(),
        },
        clock=clock,
        settings=settings,
    )
    use = AccessUse(
        id=new_id("acu"),
        request_id=row.id,
        org_id=org_id,
        operator_id=operator_id,
        resource_type=kind,
        resource_id=resource_id,
        purpose=purpose[:200],
        at=now,
        ledger_chain=entry.chain,
        ledger_seq=entry.seq,
    )
    db.add(use)
    return AccessGrant(
        request_id=row.id,
        org_id=org_id,
        operator_id=operator_id,
        kind=RequestKind(row.kind),
        resource_type=kind,
        resource_id=resource_id,
        reason_code=ReasonCode(row.reason_code),
        justification=row.justification,
        expires_at=row.expires_at,
        use_id=use.id,
        ledger_seq=entry.seq,
    )


async def support_snapshot(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
    org_id: str,
    purpose: str = "read support snapshot",
) -> SupportSnapshot:
    """The organization's projects and member count, under a support_data grant."""
    grant = await require_access(
        db,
        operator=operator,
        org_id=org_id,
        resource_type=ResourceType.SUPPORT_DATA,
        resource_id=org_id,
        purpose=purpose,
        clock=clock,
        settings=settings,
    )
    view = await organizations.support_view(db, org_id)
    return SupportSnapshot(
        org_id=view.org.id,
        slug=view.org.slug,
        name=view.org.name,
        created_at=view.org.created_at,
        member_count=view.member_count,
        projects=[
            SupportProject(id=p.id, slug=p.slug, name=p.name, created_at=p.created_at)
            for p in view.projects
        ],
        grant_request_id=grant.request_id,
        grant_expires_at=grant.expires_at,
    )
