"""Metering API: trusted sources ingest usage in batches; tenants query their usage by
hour or day and any dimension; operators see what each source sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.metering import queries
from control_plane.metering.ingest import IngestRules, ingest
from control_plane.metering.schemas import IngestResult, SourceStatRead, UsageBatch, UsageReport
from control_plane.settings import Settings

__all__ = ["ROUTES", "ClosedPeriods"]

OrgId = Annotated[str, Parameter(max_length=40)]
_DIMENSIONS = frozenset({"region", "gpu_model", "tenancy_kind", "tenancy", "endpoint", "model",
                         "project"})  # fmt: skip
_TYPES = frozenset(queries.UNITS)


class ClosedPeriods(Protocol):
    """Billing's answer to "before when is this organization's usage invoiced?"."""

    async def __call__(self, db: AsyncSession, org_ids: set[str]) -> dict[str, datetime]: ...


class MeteringController(Controller):
    path = "/api/v1/metering"
    tags = ["metering"]

    @post(
        "/events",
        opt=provider(ProviderPermission.USAGE_INGEST),
        status_code=HTTP_200_OK,
        summary="Ingest a batch of usage events (idempotent on source and id)",
    )
    async def ingest_events(
        self,
        request: Request[Any, Any, Any],
        data: UsageBatch,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> IngestResult:
        closed: ClosedPeriods | None = request.app.state.get("usage_closed_periods")
        closed_before = await closed(db, {e.org_id for e in data.events}) if closed else None
        rules = IngestRules(late=timedelta(hours=settings.usage_late_hours),
                            closed_before=closed_before)  # fmt: skip
        return await ingest(db, data.events, rules, clock.now())

    @get(
        "/sources",
        opt=provider(ProviderPermission.USAGE_INGEST),
        summary="Per source: events stored, duplicates ignored, amendments, rejections",
    )
    async def sources(self, operator: ProviderScope, db: AsyncSession) -> list[SourceStatRead]:
        return await queries.source_stats(db)


class UsageController(Controller):
    path = "/api/v1/orgs/{org_id:str}/usage"
    tags = ["metering"]

    @get("/", opt=tenant(Permission.USAGE_READ), summary="Usage per hour or day, grouped")
    async def usage(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Annotated[str, Parameter(pattern="^(hour|day)$")] = "day",
        group_by: Annotated[
            str, Parameter(max_length=200, description="comma-separated: " + ",".join(
                sorted(_DIMENSIONS)))
        ] = "",
        type: Annotated[str, Parameter(max_length=100, description="comma-separated")] = "",
        region: Annotated[str | None, Parameter(max_length=32)] = None,
        gpu_model: Annotated[str | None, Parameter(max_length=32)] = None,
        endpoint: Annotated[str | None, Parameter(max_length=40)] = None,
        tenancy: Annotated[str | None, Parameter(max_length=40)] = None,
        model: Annotated[str | None, Parameter(max_length=100)] = None,
        project: Annotated[str | None, Parameter(max_length=40)] = None,
    ) -> UsageReport:  # fmt: skip
        now = clock.now()
        since, until = _utc(since), _utc(until)
        groups = _listed(group_by, _DIMENSIONS, "query.group_by")
        types = _listed(type, _TYPES, "query.type")
        filters = {name: value for name, value in (
            ("region", region), ("gpu_model", gpu_model), ("endpoint", endpoint),
            ("tenancy", tenancy), ("model", model), ("project", project),
        ) if value}  # fmt: skip
        return await queries.usage_report(
            db, tenant, org_id, since=since or now - timedelta(days=30), until=until or now,
            granularity=granularity, group_by=groups, types=types, filters=filters,
        )  # fmt: skip


def _utc(at: datetime | None) -> datetime | None:
    """Times without an offset are read as UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _listed(text: str, allowed: frozenset[str], field: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InvalidInput(
            detail=f"Unknown {field.split('.')[-1]}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(allowed))}.",
            errors=[FieldError(field, "unknown value")],
        )
    return list(dict.fromkeys(names))


ROUTES = [MeteringController, UsageController]
