"""Residency pages without a browser: the policy editor with preview and force, the report."""

from __future__ import annotations

import html
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store as ledger
from control_plane.clock import Clock
from control_plane.identity.roles import TenantRole
from control_plane.seed.demo import seed_catalog
from tests.fixtures.factories import Tenant, login, make_org

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html,application/xhtml+xml"}


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def form_token(page: str) -> str:
    match = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture
async def org(db: AsyncSession, clock: Clock) -> Tenant:
    """An organization whose ledger has a chain in Sweden (outside canada-sovereign)."""
    await seed_catalog(db, clock)
    tenant = await make_org(db)
    await ledger.record(
        db,
        org_id=tenant.org_id,
        region="se-north-1",
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
    return tenant


async def _editor(client: Client, org: Tenant) -> str:
    await login(client, org.accounts[TenantRole.OWNER])
    page = await client.get("/residency", headers=HTML)
    assert page.status_code == 200, page.text
    return page.text


def _change(token: str, action: str, **fields: str) -> dict[str, str]:
    return {"_csrf": token, "action": action, **fields}


class TestPolicyEditor:
    async def test_shows_the_default_policy_and_an_editor_to_an_owner(
        self, client: Client, org: Tenant
    ) -> None:
        page = await _editor(client, org)
        assert '<h1 class="page-header__title">Residency policy</h1>' in page
        assert "Any region (unrestricted)" in text_of(page)
        assert "No version stored yet." in text_of(page)
        assert re.search(r'href="/residency" aria-current="page">', page)
        assert "Preview what this change affects" in page
        assert 'name="force"' not in page  # only offered once resources would be flagged

    async def test_preview_lists_what_would_fall_outside_and_offers_force(
        self, client: Client, org: Tenant
    ) -> None:
        token = form_token(await _editor(client, org))
        response = await client.post(
            "/residency", data=_change(token, "preview", template="canada-sovereign"), headers=HTML
        )
        assert response.status_code == 200, response.text
        shown = text_of(response.text)
        # Signing in recorded a ledger chain in ca-qc-1 too; only the Swedish one is outside.
        assert re.search(r"\b1 of \d+ resource\(s\) would fall outside the proposed policy", shown)
        assert "Nothing was saved." in shown
        assert "se-north-1" in shown
        assert 'name="force"' in response.text
        assert "No version stored yet." in shown

    async def test_saving_without_force_is_refused_then_force_saves_a_version(
        self, client: Client, org: Tenant
    ) -> None:
        token = form_token(await _editor(client, org))
        refused = await client.post(
            "/residency", data=_change(token, "save", template="canada-sovereign"), headers=HTML
        )
        assert refused.status_code == 409
        assert "would fall outside the new policy" in text_of(refused.text)
        assert 'name="force"' in refused.text
        saved = await client.post(
            "/residency",
            data=_change(token, "save", template="canada-sovereign", force="1"),
            headers=HTML,
            follow_redirects=False,
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == "/residency?saved=1"
        page = text_of((await client.get("/residency?saved=1", headers=HTML)).text)
        assert "Version 1 of the residency policy is in force." in page
        assert "Protected B" in page
        assert "1 resource(s) were outside this policy when it was saved with force" in page

    async def test_edited_clauses_are_saved_and_bad_ones_shown_beside_their_field(
        self, client: Client, org: Tenant
    ) -> None:
        token = form_token(await _editor(client, org))
        fields = {
            "name": "Canada and Sweden",
            "classification": "Internal",
            "allowed_jurisdictions": "ca, se",
            "operator_jurisdictions": "CA",
            "keys_in_region": "1",
        }
        saved = await client.post(
            "/residency",
            data=_change(token, "save", **fields),
            headers=HTML,
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        page = text_of((await client.get("/residency", headers=HTML)).text)
        assert "Canada and Sweden" in page
        bad = await client.post(
            "/residency",
            data=_change(token, "save", **{**fields, "allowed_jurisdictions": "Canada"}),
            headers=HTML,
        )
        assert bad.status_code == 400
        assert 'id="policy-allowed_jurisdictions-error"' in bad.text
        assert "Two-letter country codes" in bad.text

    async def test_an_auditor_sees_the_policy_but_no_editor(
        self, client: Client, org: Tenant
    ) -> None:
        await login(client, org.accounts[TenantRole.AUDITOR])
        page = await client.get("/residency", headers=HTML)
        assert page.status_code == 200
        assert "Change the policy" not in page.text
        refused = await client.post(
            "/residency",
            data=_change(form_token(page.text), "save", template="unrestricted"),
            headers=HTML,
        )
        assert refused.status_code == 403

    async def test_a_member_is_refused_the_page(self, client: Client, org: Tenant) -> None:
        await login(client, org.accounts[TenantRole.MEMBER])
        assert (await client.get("/residency", headers=HTML)).status_code == 403


class TestReportPage:
    async def test_the_auditor_sees_each_resource_and_the_signed_downloads(
        self, client: Client, org: Tenant
    ) -> None:
        await login(client, org.accounts[TenantRole.AUDITOR])
        page = await client.get("/residency/report", headers=HTML)
        assert page.status_code == 200, page.text
        shown = text_of(page.text)
        assert f"audit_chain {org.org_id}/se-north-1" in shown
        assert "Permitted" in shown
        assert "residency.unrestricted" in shown
        for fmt in ("csv", "json", "html"):
            link = f"/api/v1/orgs/{org.org_id}/residency-report?format={fmt}"
            assert f'href="{link}"' in page.text
            download = await client.get(link)
            assert download.status_code == 200, download.text
            assert download.headers["x-report-signature"]
        assert "<script>" not in page.text
        assert "style=" not in page.text
