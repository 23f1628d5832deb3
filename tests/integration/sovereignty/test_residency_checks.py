"""The checks other domains call before placing or exporting: decided by the current policy,
recorded in the ledger, and a refusal that survives the failed request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, post
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.audit.chain import chain_name
from control_plane.audit.models import AuditEntryRow
from control_plane.clock import Clock
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.models import Project
from control_plane.identity.roles import Permission, TenantRole
from control_plane.ids import new_id
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service
from control_plane.sovereignty.residency.errors import ResidencyDenied
from control_plane.sovereignty.residency.resources import builtin_sources
from control_plane.sovereignty.residency.schemas import PolicyChange
from tests.fixtures.factories import Tenant, make_org, signed_in


@pytest.fixture
async def org(db: AsyncSession, clock: Clock) -> Tenant:
    await seed_catalog(db, clock)
    tenant_ = await make_org(db)
    await db.commit()
    return tenant_


async def _set_template(db: AsyncSession, org: Tenant, template: str, clock: Clock) -> None:
    """Store a policy version as the owner would (through the service)."""
    from control_plane.identity.authz import _SCOPE_TOKEN  # the test stands in for the guard
    from control_plane.identity.principal import Principal

    owner = org.accounts[TenantRole.OWNER]
    principal = Principal(
        kind="user",
        id=owner.user_id,
        user_id=owner.user_id,
        display=owner.email,
        memberships={org.org_id: TenantRole.OWNER},
    )
    scope = TenantScope(_SCOPE_TOKEN, principal, Permission.POLICY_WRITE)
    await service.set_policy(
        db, clock, scope, org.org_id, PolicyChange(template=template), builtin_sources()
    )
    await db.commit()


async def _decisions(db: AsyncSession, org: Tenant, settings: Settings) -> list[AuditEntryRow]:
    db.expire_all()
    query = (
        select(AuditEntryRow)
        .where(
            AuditEntryRow.chain == chain_name(org.org_id, settings.region),
            AuditEntryRow.action == "residency.decision",
        )
        .order_by(AuditEntryRow.seq)
    )
    return list((await db.execute(query)).scalars().all())


def _check_args(org: Tenant, clock: Clock, settings: Settings) -> dict[str, Any]:
    return {
        "org_id": org.org_id,
        "actor_kind": "user",
        "actor_id": org.accounts[TenantRole.OWNER].user_id,
        "subject": "tenancy:ten_test",
        "clock": clock,
        "settings": settings,
    }


class TestCheckPlacement:
    async def test_an_allowed_placement_is_recorded_with_its_clause(
        self, db: AsyncSession, clock: Clock, settings: Settings, org: Tenant
    ) -> None:
        await _set_template(db, org, "canada-sovereign", clock)
        decision = await service.check_placement(
            db, region_code="ca-qc-1", **_check_args(org, clock, settings)
        )
        await db.commit()
        assert decision.allowed
        [entry] = await _decisions(db, org, settings)
        assert (entry.outcome, entry.decision_ref) == ("allowed", "residency.allowed_jurisdictions")
        assert (entry.target_type, entry.target_id) == ("tenancy", "ten_test")

    async def test_a_refused_placement_raises_with_the_rule_and_is_recorded(
        self, db: AsyncSession, clock: Clock, settings: Settings, org: Tenant
    ) -> None:
        await _set_template(db, org, "canada-sovereign", clock)
        with pytest.raises(ResidencyDenied) as refused:
            await service.check_placement(
                db, region_code="us-east-1", **_check_args(org, clock, settings)
            )
        problem = refused.value
        assert problem.status == 403
        assert problem.rule == "residency.allowed_jurisdictions"
        assert "us-east-1" in problem.detail
        assert problem.to_dict()["type"] == "/problems/residency-denied"
        assert problem.to_dict()["rule"] == "residency.allowed_jurisdictions"
        assert problem.commit_anyway
        await db.commit()
        [entry] = await _decisions(db, org, settings)
        assert (entry.outcome, entry.decision_ref) == ("denied", "residency.allowed_jurisdictions")

    async def test_an_org_without_a_policy_may_place_anywhere(
        self, db: AsyncSession, clock: Clock, settings: Settings, org: Tenant
    ) -> None:
        decision = await service.check_placement(
            db, region_code="us-east-1", **_check_args(org, clock, settings)
        )
        assert decision.allowed
        assert decision.rule == "residency.unrestricted"


class TestCheckExport:
    async def test_export_out_of_the_operator_is_refused_under_a_sovereign_policy(
        self, db: AsyncSession, clock: Clock, settings: Settings, org: Tenant
    ) -> None:
        await _set_template(db, org, "canada-sovereign", clock)
        with pytest.raises(ResidencyDenied) as refused:
            await service.check_export(
                db,
                region_code="ca-qc-1",
                destination_jurisdiction=None,
                **_check_args(org, clock, settings),
            )
        assert refused.value.rule == "residency.cross_border_export"
        inside = await service.check_export(
            db,
            region_code="ca-qc-1",
            destination_jurisdiction="CA",
            **_check_args(org, clock, settings),
        )
        assert inside.allowed
        await db.commit()
        outcomes = [e.outcome for e in await _decisions(db, org, settings)]
        assert outcomes == ["denied", "allowed"]


@post("/test/residency/place", opt=tenant(Permission.PROJECTS_WRITE), status_code=201)
async def place_and_write(
    data: dict[str, str], tenant: TenantScope, db: AsyncSession, clock: Clock, settings: Settings
) -> dict[str, str]:
    """A stand-in for a domain that checks residency, then writes what it placed."""
    org_id = tenant.resolve_org(None)
    await service.check_placement(
        db,
        org_id=org_id,
        region_code=data["region"],
        actor_kind="user",
        actor_id=tenant.principal.id,
        subject="project:placed",
        clock=clock,
        settings=settings,
    )
    db.add(
        Project(
            id=new_id("prj"),
            org_id=org_id,
            slug=f"placed-{data['region']}",
            name="Placed",
            description="",
            created_at=clock.now(),
        )
    )
    return {"placed": data["region"]}


@pytest.fixture
async def placing_client(
    app: Litestar, settings: Settings, clock: Clock
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app with the stand-in route (``app`` is requested so its teardown empties tables)."""
    placing = create_app(
        settings, clock=clock, extra_route_handlers=[place_and_write], configure_logs=False
    )
    async with AsyncTestClient(app=placing, base_url="http://127.0.0.1") as test_client:
        yield test_client
    await placing.state.engine.dispose()


class TestRefusalInARequest:
    async def test_the_refusal_answers_403_with_the_rule_and_its_entry_survives(
        self,
        placing_client: AsyncTestClient[Litestar],
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        org: Tenant,
    ) -> None:
        await _set_template(db, org, "canada-sovereign", clock)
        owner = await signed_in(placing_client, org.accounts[TenantRole.OWNER])
        response = await placing_client.post(
            "/test/residency/place", json={"region": "se-north-1"}, headers=owner
        )
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "/problems/residency-denied"
        assert problem["rule"] == "residency.allowed_jurisdictions"
        assert "se-north-1" in problem["detail"]
        [entry] = await _decisions(db, org, settings)
        assert entry.outcome == "denied"
        placed = select(func.count()).where(Project.slug == "placed-se-north-1")
        assert (await db.execute(placed)).scalar_one() == 0

    async def test_an_allowed_placement_commits_with_its_entry(
        self,
        placing_client: AsyncTestClient[Litestar],
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        org: Tenant,
    ) -> None:
        await _set_template(db, org, "canada-sovereign", clock)
        owner = await signed_in(placing_client, org.accounts[TenantRole.OWNER])
        response = await placing_client.post(
            "/test/residency/place", json={"region": "ca-qc-1"}, headers=owner
        )
        assert response.status_code == 201, response.text
        [entry] = await _decisions(db, org, settings)
        assert entry.outcome == "allowed"
        placed = select(func.count()).where(Project.slug == "placed-ca-qc-1")
        assert (await db.execute(placed)).scalar_one() == 1
