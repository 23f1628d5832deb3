"""Ledger API: public keys for anyone, entries and export bundles for the tenant's auditors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import service
from control_plane.audit.recorder import audited_read
from control_plane.audit.schemas import AuditEntryRead, AuditKeysRead
from control_plane.clock import Clock
from control_plane.http.pagination import Page, PageRequest
from control_plane.identity.authz import TenantScope, public, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings

OrgId = Annotated[str, Parameter(max_length=40)]
Since = Annotated[
    datetime | None, Parameter(description="Entries at or after this time (RFC 3339).")
]
Until = Annotated[
    datetime | None, Parameter(description="Entries at or before this time (RFC 3339).")
]
Destination = Annotated[
    str | None,
    Parameter(
        pattern=r"^[A-Za-z]{2}$",
        description=(
            "Jurisdiction (ISO 3166 alpha-2) the bundle goes to; the organization's residency "
            "policy must allow exporting there. Policies that forbid cross-border export "
            "refuse an undeclared destination."
        ),
    ),
]
ZIP = "application/zip"


class AuditKeysController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get(
        "/keys",
        opt=public(),
        summary="Public keys that sign this region's audit checkpoints",
        description=(
            "Every Ed25519 key the region has signed checkpoints with, and when. Fetch them "
            "independently of an export bundle and pass them to `cpctl audit verify --keys` "
            "to prove who signed it."
        ),
    )
    async def audit_keys(self, settings: Settings, clock: Clock) -> AuditKeysRead:
        return service.public_keys(settings, clock.now())


class AuditLedgerController(Controller):
    path = "/api/v1/orgs/{org_id:str}/audit"
    tags = ["audit"]

    @get("/entries", opt=tenant(Permission.AUDIT_READ), summary="The organization's ledger")
    async def list_audit_entries(
        self,
        org_id: OrgId,
        db: AsyncSession,
        tenant: TenantScope,
        settings: Settings,
        page: PageRequest,
        since: Since = None,
        until: Until = None,
        action: Annotated[
            str | None, Parameter(max_length=100, description="Action or action prefix.")
        ] = None,
        outcome: Annotated[
            str | None, Parameter(max_length=20, description="success, denied, rejected...")
        ] = None,
        actor_id: Annotated[str | None, Parameter(max_length=80)] = None,
    ) -> Page[AuditEntryRead]:
        where = service.EntryFilter(action, outcome, actor_id, since, until)
        return await service.list_entries(db, tenant, settings, org_id, page, where)

    @get(
        "/export",
        opt={**tenant(Permission.AUDIT_EXPORT), **audited_read()},
        summary="Export an offline-verifiable bundle (zip)",
        description=(
            "A zip of entries.jsonl, entries.csv, checkpoints.json and manifest.json "
            "(docs/audit-format.md). Verify it with `cpctl audit verify DIR`, offline."
        ),
        media_type=ZIP,
        responses={},
    )
    async def export_audit_bundle(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        db: AsyncSession,
        tenant: TenantScope,
        settings: Settings,
        clock: Clock,
        since: Since = None,
        until: Until = None,
        destination: Destination = None,
    ) -> Response[bytes]:
        content = await service.export_zip(
            db,
            request.app.state.sessionmaker,
            tenant,
            settings,
            clock,
            org_id,
            since,
            until,
            destination.upper() if destination else None,
        )
        name = f"audit-{org_id}-{settings.region}-{clock.now():%Y%m%dT%H%M%SZ}.zip"
        return Response(
            content,
            media_type=ZIP,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


ROUTES: list[ControllerRouterHandler] = [AuditKeysController, AuditLedgerController]
