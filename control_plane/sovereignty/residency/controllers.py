"""Residency API: templates, an organization's policy and its versions, previews, dry-run
evaluation and the signed residency report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.keyfiles import load_keyring
from control_plane.audit.recorder import audited_read
from control_plane.audit.signing import Keyring
from control_plane.clock import Clock
from control_plane.errors import ServiceUnavailable
from control_plane.http.pagination import Page, PageRequest
from control_plane.http.problems import problem_responses
from control_plane.identity.authz import TenantScope, authenticated, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.sovereignty.residency import report, service
from control_plane.sovereignty.residency.resources import ResourceSources
from control_plane.sovereignty.residency.schemas import (
    EvaluateRead,
    EvaluateRequest,
    PolicyChange,
    PolicyPreview,
    PolicyRead,
    SignedReportRead,
    TemplateRead,
)

OrgId = Annotated[str, Parameter(max_length=40)]


@dataclass
class _ReportOperation(Operation):
    """The report's 200 answer is JSON, CSV or HTML (``format``): document all three."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        content = getattr(ok, "content", None)
        if content is not None:
            for media_type in ("text/csv", "text/html"):
                content[media_type] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


SIGNATURE_HEADER = "X-Report-Signature"
KEY_ID_HEADER = "X-Report-Key-Id"


def resource_sources(request: Request[Any, Any, Any]) -> ResourceSources:
    """The registry the composition root keeps on ``app.state.residency_sources``."""
    sources: ResourceSources = request.app.state.residency_sources
    return sources


def report_keyring(request: Request[Any, Any, Any], settings: Settings, clock: Clock) -> Keyring:
    """The audit signing keys: the app's keyring, else the region's key files (the keys
    published at ``GET /api/v1/audit/keys``); 503 when neither can be read."""
    keyring = getattr(request.app.state, "audit_keyring", None)
    if isinstance(keyring, Keyring):
        return keyring
    try:
        return load_keyring(settings.key_dir, settings.region, clock.now())
    except OSError as exc:
        raise ServiceUnavailable(detail="Report signing keys are not available.") from exc


@get(
    "/api/v1/residency-templates",
    opt=authenticated(),
    tags=["residency"],
    summary="Residency policy templates",
)
async def list_templates() -> list[TemplateRead]:
    return service.list_templates()


class ResidencyPolicyController(Controller):
    path = "/api/v1/orgs/{org_id:str}"
    tags = ["residency"]

    @get(
        "/residency-policy",
        opt=tenant(Permission.POLICY_READ),
        summary="The organization's current residency policy",
    )
    async def get_policy(self, org_id: OrgId, tenant: TenantScope, db: AsyncSession) -> PolicyRead:
        return await service.get_policy(db, tenant, org_id)

    @put(
        "/residency-policy",
        opt=tenant(Permission.POLICY_WRITE),
        summary="Store a new version of the residency policy",
        description=(
            "Answers 409 residency-policy-strands-resources, listing them, when existing "
            "resources would fall outside the new policy, unless `force` is true (they are "
            "then flagged in the residency report)."
        ),
        status_code=HTTP_200_OK,
    )
    async def set_policy(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        data: PolicyChange,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> PolicyRead:
        return await service.set_policy(db, clock, tenant, org_id, data, resource_sources(request))

    @get(
        "/residency-policy/versions",
        opt=tenant(Permission.POLICY_READ),
        summary="Stored versions of the residency policy, newest first",
    )
    async def list_versions(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, page: PageRequest
    ) -> Page[PolicyRead]:
        return await service.list_versions(db, tenant, org_id, page)

    @post(
        "/residency-policy/preview",
        opt=tenant(Permission.POLICY_READ),
        summary="What a proposed policy would do to existing resources (writes nothing)",
        status_code=HTTP_200_OK,
    )
    async def preview(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        data: PolicyChange,
        tenant: TenantScope,
        db: AsyncSession,
    ) -> PolicyPreview:
        return await service.preview(db, tenant, org_id, data, resource_sources(request))

    @post(
        "/residency-policy/evaluate",
        opt=tenant(Permission.POLICY_READ),
        summary="Dry-run a placement in a region under the current policy",
        status_code=HTTP_200_OK,
    )
    async def evaluate(
        self, org_id: OrgId, data: EvaluateRequest, tenant: TenantScope, db: AsyncSession
    ) -> EvaluateRead:
        return await service.evaluate(db, tenant, org_id, data.region_code)

    @get(
        "/residency-report",
        # A compliance export: recorded in the ledger like the audit export.
        opt={**tenant(Permission.POLICY_READ), **audited_read()},
        summary="Signed residency report: every resource, where it lives, the clause permitting it",
        description=(
            f"The `{SIGNATURE_HEADER}` header is a base64 Ed25519 signature of the exact body "
            f"bytes by the key named in `{KEY_ID_HEADER}` (docs/residency.md)."
        ),
        responses={
            200: ResponseSpec(
                SignedReportRead,
                description=(
                    "The report (JSON shown; `format=csv` answers text/csv, `format=html` "
                    "text/html), signed over its exact bytes."
                ),
            ),
            **problem_responses(503),
        },
        response_headers=[
            ResponseHeader(
                name=SIGNATURE_HEADER,
                description="Base64 Ed25519 signature of the exact body bytes.",
                documentation_only=True,
            ),
            ResponseHeader(
                name=KEY_ID_HEADER,
                description="Id of the signing key (see GET /api/v1/audit/keys).",
                documentation_only=True,
            ),
        ],
        media_type="application/json",
        operation_class=_ReportOperation,
    )
    async def residency_report(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        report_format: Annotated[
            Literal["json", "csv", "html"],
            QueryParameter(name="format", description="json, csv or html"),
        ] = "json",
    ) -> Response[bytes]:
        keyring = report_keyring(request, settings, clock)
        document = await report.build_report(
            db, tenant, org_id, resource_sources(request), clock, settings.region
        )
        rendered = report.render(document, report_format, keyring, settings.region)
        headers = {SIGNATURE_HEADER: rendered.signature, KEY_ID_HEADER: rendered.key_id}
        if report_format != "json":
            stamp = _stamp(clock.now())
            disposition = "attachment" if report_format == "csv" else "inline"
            headers["Content-Disposition"] = (
                f'{disposition}; filename="residency-report-{stamp}.{report_format}"'
            )
        return Response(rendered.body, media_type=rendered.media_type, headers=headers)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


ROUTES: list[ControllerRouterHandler] = [list_templates, ResidencyPolicyController]
