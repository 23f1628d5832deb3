"""Residency policy API: templates, versions, refusing changes that strand resources,
previews, dry-run evaluation."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store as ledger
from control_plane.clock import Clock
from control_plane.identity.roles import TenantRole
from control_plane.seed.demo import seed_catalog
from control_plane.sovereignty.residency.models import ResidencyPolicyVersion
from tests.fixtures.factories import Tenant, bearer, make_api_key, make_org, signed_in

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def org(db: AsyncSession, clock: Clock) -> Tenant:
    await seed_catalog(db, clock)
    tenant = await make_org(db)
    await db.commit()
    return tenant


@pytest.fixture
async def owner(client: Client, org: Tenant) -> dict[str, str]:
    return await signed_in(client, org.accounts[TenantRole.OWNER])


def _policy_url(org: Tenant, tail: str = "") -> str:
    return f"/api/v1/orgs/{org.org_id}/residency-policy{tail}"


async def _chain_in(db: AsyncSession, clock: Clock, org: Tenant, region: str) -> str:
    """Give the organization a ledger chain in ``region`` (one entry recorded there)."""
    entry = await ledger.record(
        db,
        org_id=org.org_id,
        region=region,
        actor_kind="system",
        actor_id=None,
        action="test.seed",
        target_type=None,
        target_id=None,
        request_id=None,
        source_address=None,
        outcome="success",
        at=clock.now(),
    )
    await db.commit()
    return entry.chain


async def _stored_versions(db: AsyncSession, org: Tenant) -> int:
    db.expire_all()
    query = select(func.count()).where(ResidencyPolicyVersion.org_id == org.org_id)
    return int((await db.execute(query)).scalar_one())


class TestTemplates:
    async def test_any_signed_in_caller_lists_the_three_templates(
        self, client: Client, org: Tenant
    ) -> None:
        member = await signed_in(client, org.accounts[TenantRole.MEMBER])
        response = await client.get("/api/v1/residency-templates", headers=member)
        assert response.status_code == 200, response.text
        by_slug = {t["slug"]: t["policy"] for t in response.json()}
        assert set(by_slug) == {"canada-sovereign", "eu-data-boundary", "unrestricted"}
        assert by_slug["canada-sovereign"]["allowed_jurisdictions"] == ["CA"]
        assert by_slug["canada-sovereign"]["classification"] == "Protected B"
        assert by_slug["eu-data-boundary"]["allowed_groups"] == ["EU"]
        assert "SE" in by_slug["eu-data-boundary"]["operator_jurisdictions"]
        assert by_slug["unrestricted"]["unrestricted"] is True


class TestVersions:
    async def test_an_org_without_a_policy_reads_the_unrestricted_default_as_version_0(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        response = await client.get(_policy_url(org), headers=owner)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version"] == 0
        assert body["template"] == "unrestricted"
        assert body["policy"]["unrestricted"] is True
        assert body["created_at"] is None

    async def test_each_change_stores_a_new_version_saying_who_and_from_which_template(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        first = await client.put(
            _policy_url(org), json={"template": "canada-sovereign"}, headers=owner
        )
        assert first.status_code == 200, first.text
        assert first.json()["version"] == 1
        assert first.json()["template"] == "canada-sovereign"
        assert first.json()["changed_by_kind"] == "user"
        assert first.json()["changed_by_id"] == org.accounts[TenantRole.OWNER].user_id
        # Without a template, a change starts from the current policy.
        second = await client.put(
            _policy_url(org), json={"cross_border_export": True}, headers=owner
        )
        assert second.status_code == 200, second.text
        body = second.json()
        assert body["version"] == 2
        assert body["template"] is None
        assert body["policy"]["allowed_jurisdictions"] == ["CA"]
        assert body["policy"]["cross_border_export"] is True

        current = await client.get(_policy_url(org), headers=owner)
        assert current.json()["version"] == 2
        page = await client.get(_policy_url(org, "/versions"), params={"limit": 1}, headers=owner)
        assert [v["version"] for v in page.json()["items"]] == [2]
        rest = await client.get(
            _policy_url(org, "/versions"),
            params={"limit": 1, "cursor": page.json()["next_cursor"]},
            headers=owner,
        )
        assert [v["version"] for v in rest.json()["items"]] == [1]
        assert rest.json()["items"][0]["policy"]["cross_border_export"] is False
        assert rest.json()["next_cursor"] is None

    async def test_an_api_key_with_policy_write_changes_the_policy(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        secret = await make_api_key(db, org, TenantRole.ADMIN)
        await db.commit()
        response = await client.put(
            _policy_url(org), json={"template": "eu-data-boundary"}, headers=bearer(secret)
        )
        assert response.status_code == 200, response.text
        assert response.json()["changed_by_kind"] == "api_key"

    async def test_an_auditor_reads_the_policy_but_cannot_change_it(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        auditor = await signed_in(client, org.accounts[TenantRole.AUDITOR])
        assert (await client.get(_policy_url(org), headers=auditor)).status_code == 200
        refused = await client.put(
            _policy_url(org), json={"template": "canada-sovereign"}, headers=auditor
        )
        assert refused.status_code == 403
        assert await _stored_versions(db, org) == 0

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"template": "nowhere"}, "body.template"),
            ({"allowed_regions": ["atlantis-1"], "unrestricted": False}, "body.allowed_regions"),
            (
                {"template": "unrestricted", "allowed_jurisdictions": ["CA"]},
                "body.allowed_jurisdictions",
            ),
        ],
        ids=["unknown template", "unknown region", "unrestricted with an allow-list"],
    )
    async def test_an_invalid_policy_is_refused_naming_the_field(
        self,
        client: Client,
        db: AsyncSession,
        org: Tenant,
        owner: dict[str, str],
        change: dict[str, Any],
        field: str,
    ) -> None:
        response = await client.put(_policy_url(org), json=change, headers=owner)
        assert response.status_code == 400, response.text
        assert field in [e["field"] for e in response.json()["errors"]]
        assert await _stored_versions(db, org) == 0

    async def test_lower_case_jurisdictions_are_refused_at_the_edge(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        response = await client.put(
            _policy_url(org), json={"allowed_jurisdictions": ["ca"]}, headers=owner
        )
        assert response.status_code == 400


class TestStrandedResources:
    async def test_a_change_stranding_resources_is_refused_listing_them(
        self, client: Client, db: AsyncSession, clock: Clock, org: Tenant, owner: dict[str, str]
    ) -> None:
        chain = await _chain_in(db, clock, org, "se-north-1")
        response = await client.put(
            _policy_url(org), json={"template": "canada-sovereign"}, headers=owner
        )
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == "/problems/residency-policy-strands-resources"
        stranded = {(r["kind"], r["id"], r["region_code"]) for r in problem["resources"]}
        assert stranded == {("audit_chain", chain, "se-north-1")}
        assert problem["resources"][0]["jurisdiction"] == "SE"
        assert await _stored_versions(db, org) == 0

    async def test_force_saves_the_change_and_records_the_resources_as_flagged(
        self, client: Client, db: AsyncSession, clock: Clock, org: Tenant, owner: dict[str, str]
    ) -> None:
        chain = await _chain_in(db, clock, org, "se-north-1")
        response = await client.put(
            _policy_url(org), json={"template": "canada-sovereign", "force": True}, headers=owner
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["forced"] is True
        assert [(f["kind"], f["id"]) for f in body["flagged"]] == [("audit_chain", chain)]

    async def test_a_change_keeping_every_resource_inside_needs_no_force(
        self, client: Client, db: AsyncSession, clock: Clock, org: Tenant, owner: dict[str, str]
    ) -> None:
        await _chain_in(db, clock, org, "ca-qc-1")
        response = await client.put(
            _policy_url(org), json={"template": "canada-sovereign"}, headers=owner
        )
        assert response.status_code == 200, response.text
        assert response.json()["forced"] is False
        assert response.json()["flagged"] == []


class TestPreviewAndEvaluate:
    async def test_preview_says_which_resources_would_fall_outside_and_writes_nothing(
        self, client: Client, db: AsyncSession, clock: Clock, org: Tenant, owner: dict[str, str]
    ) -> None:
        inside = await _chain_in(db, clock, org, "ca-qc-1")
        outside = await _chain_in(db, clock, org, "us-east-1")
        response = await client.post(
            _policy_url(org, "/preview"), json={"template": "canada-sovereign"}, headers=owner
        )
        assert response.status_code == 200, response.text
        body = response.json()
        verdicts = {r["id"]: (r["allowed"], r["rule"]) for r in body["resources"]}
        assert verdicts[inside] == (True, "residency.allowed_jurisdictions")
        assert verdicts[outside] == (False, "residency.allowed_jurisdictions")
        assert body["outside"] == 1
        assert body["policy"]["name"] == "Canada sovereign"
        assert await _stored_versions(db, org) == 0

    async def test_an_auditor_may_preview(self, client: Client, org: Tenant) -> None:
        auditor = await signed_in(client, org.accounts[TenantRole.AUDITOR])
        response = await client.post(
            _policy_url(org, "/preview"), json={"template": "eu-data-boundary"}, headers=auditor
        )
        assert response.status_code == 200, response.text

    async def test_evaluate_explains_a_refused_region_under_the_current_policy(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        await client.put(_policy_url(org), json={"template": "canada-sovereign"}, headers=owner)
        refused = await client.post(
            _policy_url(org, "/evaluate"), json={"region_code": "se-north-1"}, headers=owner
        )
        assert refused.status_code == 200, refused.text
        body = refused.json()
        assert body["policy_version"] == 1
        assert body["decision"]["allowed"] is False
        assert body["decision"]["rule"] == "residency.allowed_jurisdictions"
        assert "se-north-1" in body["decision"]["explanation"]
        allowed = await client.post(
            _policy_url(org, "/evaluate"), json={"region_code": "ca-qc-1"}, headers=owner
        )
        assert allowed.json()["decision"]["allowed"] is True

    async def test_evaluating_an_unknown_region_is_invalid_input(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        response = await client.post(
            _policy_url(org, "/evaluate"), json={"region_code": "atlantis-1"}, headers=owner
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.region_code"

    async def test_another_tenant_learns_nothing(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        other = await make_org(db)
        await db.commit()
        outsider = await signed_in(client, other.accounts[TenantRole.OWNER])
        response = await client.get(_policy_url(org), headers=outsider)
        assert response.status_code == 404
