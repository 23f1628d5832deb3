"""The operator access pages: operators ask, tenant admins decide in the page, the break-glass
banner follows admins everywhere until acknowledged, auditors read and download the report."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.seed.demo import seed_catalog
from tests.fixtures.factories import Tenant, make_org, make_user, signed_in

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html"}


@dataclass
class Cast:
    org: Tenant
    admin: dict[str, str]
    auditor: dict[str, str]
    member: dict[str, str]
    operator: dict[str, str]
    glass: dict[str, str]  # an operator-admin


@pytest.fixture
async def cast(client: Client, db: AsyncSession, clock: OffsetClock) -> Cast:
    await seed_catalog(db, clock)
    org = await make_org(db, "northwind")
    operator = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA")
    glass = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return Cast(
        org=org,
        admin=await signed_in(client, org.accounts[TenantRole.ADMIN]),
        auditor=await signed_in(client, org.accounts[TenantRole.AUDITOR]),
        member=await signed_in(client, org.accounts[TenantRole.MEMBER]),
        operator=await signed_in(client, operator),
        glass=await signed_in(client, glass),
    )


async def page(client: Client, path: str, who: dict[str, str]) -> Any:
    return await client.get(path, headers={**who, **HTML}, follow_redirects=False)


async def submit(client: Client, path: str, who: dict[str, str], **fields: str) -> Any:
    form = {"_csrf": who["X-CSRF-Token"], **fields}
    headers = {"Cookie": who["Cookie"], **HTML}
    return await client.post(path, data=form, headers=headers, follow_redirects=False)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def ask_in_portal(client: Client, cast: Cast, **overrides: str) -> str:
    fields = {
        "org_id": cast.org.slug,
        "resource_type": "support_data",
        "reason_code": "customer_initiated_support",
        "justification": "Ticket 99: slow jobs",
        "duration_minutes": "60",
        **overrides,
    }
    sent = await submit(client, "/operator/access", cast.operator, **fields)
    assert sent.status_code == 303, sent.text
    mine = await client.get("/api/v1/access-requests", headers={"Cookie": cast.operator["Cookie"]})
    return str(mine.json()["items"][0]["id"])


class TestOperatorPage:
    async def test_operator_asks_by_slug_and_sees_the_request_pending(
        self, client: Client, cast: Cast
    ) -> None:
        request_id = await ask_in_portal(client, cast)

        shown = await page(client, "/operator/access?done=requested", cast.operator)

        assert shown.status_code == 200
        words = text(shown.text)
        assert "Request sent" in words
        assert request_id in words
        assert "Pending" in words
        assert "Open support data" not in words

    async def test_a_bad_form_shows_errors_next_to_the_fields(
        self, client: Client, cast: Cast
    ) -> None:
        sent = await submit(
            client,
            "/operator/access",
            cast.operator,
            org_id=cast.org.slug,
            resource_type="tenancy",
            reason_code="customer_initiated_support",
            justification="",
            duration_minutes="60",
        )

        assert sent.status_code == 400
        assert 'id="access-justification-error"' in sent.text

    async def test_unknown_organization_is_named(self, client: Client, cast: Cast) -> None:
        sent = await submit(
            client,
            "/operator/access",
            cast.operator,
            org_id="nobody-here",
            resource_type="support_data",
            reason_code="incident_response",
            justification="x",
            duration_minutes="60",
        )

        assert sent.status_code == 404
        assert "No such organization" in sent.text

    async def test_tenants_cannot_open_the_operator_page(self, client: Client, cast: Cast) -> None:
        assert (await page(client, "/operator/access", cast.admin)).status_code == 403


class TestTenantDecides:
    async def test_admin_approves_in_the_page_and_the_operator_reads_support_data(
        self, client: Client, cast: Cast
    ) -> None:
        request_id = await ask_in_portal(client, cast)
        listing = await page(client, "/access", cast.admin)
        assert "Ticket 99: slow jobs" in listing.text
        assert f'action="/access/requests/{request_id}/approve"' in listing.text

        approved = await submit(client, f"/access/requests/{request_id}/approve", cast.admin)
        assert approved.headers["location"] == "/access?done=approved"
        after = text((await page(client, "/access?done=approved", cast.admin)).text)
        assert "Access approved" in after

        mine = await page(client, "/operator/access", cast.operator)
        assert f"/operator/access/support?org_id={cast.org.org_id}" in mine.text
        support = await page(
            client, f"/operator/access/support?org_id={cast.org.org_id}", cast.operator
        )
        assert support.status_code == 200
        assert "Northwind" in support.text
        assert "recorded in the organization" in text(support.text)

        detail = await page(client, f"/access/requests/{request_id}", cast.auditor)
        assert "support data page in the portal" in detail.text

    async def test_deny_needs_a_reason_and_shows_it_to_the_operator(
        self, client: Client, cast: Cast
    ) -> None:
        request_id = await ask_in_portal(client, cast)

        blank = await submit(client, f"/access/requests/{request_id}/deny", cast.admin, reason="")
        assert blank.status_code == 400
        assert "This field is required" in blank.text
        denied = await submit(
            client, f"/access/requests/{request_id}/deny", cast.admin, reason="Use the API"
        )
        assert denied.status_code == 303

        mine = text((await page(client, "/operator/access", cast.operator)).text)
        assert "Denied" in mine
        assert "Use the API" in mine

    async def test_revoke_from_the_active_grants(self, client: Client, cast: Cast) -> None:
        request_id = await ask_in_portal(client, cast)
        await submit(client, f"/access/requests/{request_id}/approve", cast.admin)

        revoked = await submit(client, f"/access/requests/{request_id}/revoke", cast.admin)

        assert revoked.headers["location"] == "/access?done=revoked"
        support = await page(
            client, f"/operator/access/support?org_id={cast.org.org_id}", cast.operator
        )
        assert support.status_code == 403

    async def test_a_late_decision_says_why_it_failed(self, client: Client, cast: Cast) -> None:
        request_id = await ask_in_portal(client, cast)
        await submit(client, f"/access/requests/{request_id}/deny", cast.admin, reason="no")

        again = await submit(client, f"/access/requests/{request_id}/approve", cast.admin)

        assert again.status_code == 409
        assert "it is denied" in again.text

    async def test_auditors_see_requests_without_decision_buttons_members_are_refused(
        self, client: Client, cast: Cast
    ) -> None:
        await ask_in_portal(client, cast)

        seen = await page(client, "/access", cast.auditor)
        assert seen.status_code == 200
        assert "Ticket 99" in seen.text
        assert "/approve" not in seen.text
        assert (await page(client, "/access", cast.member)).status_code == 403


class TestBreakGlassBanner:
    async def test_banner_follows_admins_until_reviewed(self, client: Client, cast: Cast) -> None:
        opened = await client.post(
            "/api/v1/break-glass",
            json={
                "org_id": cast.org.org_id,
                "resource_type": "support_data",
                "reason_code": "incident_response",
                "justification": "GPU fault on tenant nodes",
                "duration_minutes": 30,
            },
            headers=cast.glass,
        )
        assert opened.status_code == 201, opened.text
        glass_id = opened.json()["id"]

        for path in ("/dashboard", "/projects", "/access"):
            shown = text((await page(client, path, cast.admin)).text)
            assert "Emergency (break-glass) operator access" in shown, path
            assert "GPU fault on tenant nodes" in shown
        assert "break-glass" not in (await page(client, "/dashboard", cast.member)).text.lower()
        review_page = await page(client, f"/access/requests/{glass_id}", cast.admin)
        assert "Record review" in review_page.text

        reviewed = await submit(
            client,
            f"/access/requests/{glass_id}/review",
            cast.admin,
            verdict="accepted",
            comment="Confirmed with our on-call",
            **{"from": "detail"},
        )
        assert reviewed.headers["location"] == f"/access/requests/{glass_id}?done=reviewed"
        after = text((await page(client, "/dashboard", cast.admin)).text)
        assert "Emergency (break-glass)" not in after

    async def test_acknowledge_hides_the_banner(self, client: Client, cast: Cast) -> None:
        await client.post(
            "/api/v1/break-glass",
            json={
                "org_id": cast.org.org_id,
                "resource_type": "tenancy",
                "resource_id": "ten_1",
                "reason_code": "incident_response",
                "justification": "Fire",
                "duration_minutes": 15,
            },
            headers=cast.glass,
        )
        shown = (await page(client, "/projects", cast.admin)).text
        [action] = re.findall(r'action="(/access/notifications/[^"]+/acknowledge)"', shown)

        done = await submit(client, action, cast.admin)

        assert done.status_code == 303
        assert "Emergency (break-glass)" not in (await page(client, "/projects", cast.admin)).text


class TestReportPage:
    async def test_auditor_reads_the_report_and_downloads_csv(
        self, client: Client, cast: Cast
    ) -> None:
        request_id = await ask_in_portal(client, cast)
        await submit(client, f"/access/requests/{request_id}/approve", cast.admin)
        await page(client, f"/operator/access/support?org_id={cast.org.org_id}", cast.operator)

        shown = await page(client, "/access/report", cast.auditor)
        csv_file = await page(client, "/access/report.csv", cast.auditor)

        assert shown.status_code == 200
        assert request_id in shown.text
        assert "support data page in the portal" in shown.text
        assert csv_file.headers["content-type"].startswith("text/csv")
        assert "attachment" in csv_file.headers["content-disposition"]
        assert request_id in csv_file.text
        assert "support data page in the portal" in csv_file.text
