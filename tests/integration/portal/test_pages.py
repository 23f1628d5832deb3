"""Portal pages without a browser: sign-in, dashboard numbers, projects and keys, inventory."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.clock import OffsetClock
from control_plane.identity.login_limits import SlidingWindowLimiter
from control_plane.identity.models import ApiKey
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.inventory.models import Node, NodeEvent
from control_plane.seed.demo import DEMO_LOGINS, seed_demo
from control_plane.settings import Settings
from tests.fixtures.factories import (
    Account,
    Tenant,
    bearer,
    login,
    make_api_key,
    make_org,
    make_project,
    make_user,
)

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html,application/xhtml+xml"}


# Reading pages the way a person does: the visible text of named parts. ------------------


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def form_token(page: str) -> str:
    match = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def stats(page: str) -> dict[str, str]:
    """The dashboard's number tiles: label → value as shown."""
    pairs = re.findall(
        r'<dt class="stat__label">(.*?)</dt>\s*<dd class="stat__value">(.*?)</dd>', page, re.S
    )
    return {text_of(label): text_of(value) for label, value in pairs}


def node_rows(page: str) -> list[str]:
    """Hostnames listed in the inventory's node table, in order."""
    return re.findall(r'<a class="cell-title mono" href="/operator/nodes/[^"]+">([^<]+)</a>', page)


def field_error(page: str, field_id: str) -> str:
    match = re.search(rf'<p class="field__error" id="{field_id}-error">(.*?)</p>', page, re.S)
    return text_of(match.group(1)) if match else ""


def chart_data(page: str, chart_id: str) -> dict[str, Any]:
    match = re.search(
        rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', page, re.S
    )
    assert match, f"no data for chart {chart_id}"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


async def sign_in(client: Client, account: Account) -> str:
    """Sign in (through the API, as the shared helper does); returns the session's CSRF token."""
    return (await login(client, account))["X-CSRF-Token"]


async def post_form(client: Client, path: str, data: dict[str, str]) -> Any:
    return await client.post(path, data=data, headers=HTML, follow_redirects=False)


# Fixtures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    admin: Account
    ca: Account
    se: Account
    owner: Account


@pytest.fixture
async def fleet(db: AsyncSession, clock: OffsetClock) -> Fleet:
    """The demo fleet (42 nodes); users made first with the factories' quick password hash."""
    roles = {
        "ops-admin@provider.example": (ProviderRole.OPERATOR_ADMIN, None),
        "ops-ca@provider.example": (ProviderRole.OPERATOR, "CA"),
        "ops-se@provider.example": (ProviderRole.OPERATOR, "SE"),
    }
    made = {}
    for demo in DEMO_LOGINS:
        role, home = roles.get(demo.email, (None, None))
        made[demo.email] = await make_user(db, demo.email, provider_role=role, home_country=home)
    await seed_demo(db, clock)
    await db.commit()
    return Fleet(
        admin=made["ops-admin@provider.example"],
        ca=made["ops-ca@provider.example"],
        se=made["ops-se@provider.example"],
        owner=made["owner@demo.example"],
    )


@pytest.fixture
async def acme(db: AsyncSession) -> Tenant:
    made = await make_org(db, "acme")
    await db.commit()
    return made


async def node_id(db: AsyncSession, hostname: str) -> str:
    found = (await db.execute(select(Node.id).where(Node.hostname == hostname))).scalar_one()
    return str(found)


async def node_state(db: AsyncSession, node: str) -> str:
    found = (await db.execute(select(Node.state).where(Node.id == node))).scalar_one()
    return str(found)


# Tests ----------------------------------------------------------------------------------


class TestSignIn:
    async def test_form_sets_the_csrf_cookie_its_hidden_field_repeats(self, client: Client) -> None:
        page = await client.get("/login", headers=HTML)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert client.cookies.get("cp_csrf") == form_token(page.text)
        assert 'autocomplete="current-password"' in page.text

    @pytest.mark.parametrize(
        ("reason", "message"),
        [
            ("no_account", "No account here matches that identity"),
            ("expired", "The sign-on took too long"),
            ("<script>", "Single sign-on failed at the identity provider"),
        ],
    )
    async def test_a_failed_single_sign_on_says_why(
        self, client: Client, reason: str, message: str
    ) -> None:
        page = await client.get(f"/login?error=sso&reason={reason}", headers=HTML)
        assert page.status_code == 200
        assert message in text_of(page.text)
        assert "<script>" not in page.text

    async def test_wrong_password_shows_a_message_and_keeps_the_email(
        self, client: Client, acme: Tenant
    ) -> None:
        email = acme.accounts[TenantRole.OWNER].email
        token = form_token((await client.get("/login", headers=HTML)).text)
        response = await post_form(
            client, "/login", {"email": email, "password": "not it", "_csrf": token}
        )
        assert response.status_code == 401
        assert "Wrong email or password." in text_of(response.text)
        assert f'value="{email}"' in response.text
        assert "cp_session" not in response.cookies

    async def test_missing_csrf_token_is_refused_with_a_403_page(
        self, client: Client, acme: Tenant
    ) -> None:
        await client.get("/login", headers=HTML)
        account = acme.accounts[TenantRole.OWNER]
        response = await post_form(
            client, "/login", {"email": account.email, "password": account.password}
        )
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "CSRF" in text_of(response.text)

    async def test_empty_fields_get_errors_next_to_them(self, client: Client) -> None:
        token = form_token((await client.get("/login", headers=HTML)).text)
        response = await post_form(client, "/login", {"email": "", "password": "", "_csrf": token})
        assert response.status_code == 400
        assert field_error(response.text, "login-email") == "Error: Enter your email address."
        assert field_error(response.text, "login-password") == "Error: Enter your password."

    async def test_a_malformed_email_is_named_next_to_the_field(self, client: Client) -> None:
        token = form_token((await client.get("/login", headers=HTML)).text)
        response = await post_form(
            client, "/login", {"email": "not-an-email", "password": "x", "_csrf": token}
        )
        assert response.status_code == 400
        assert field_error(response.text, "login-email") == (
            "Error: Enter an email address like name@example.com."
        )

    async def test_success_sets_the_session_and_goes_to_next(
        self, client: Client, acme: Tenant
    ) -> None:
        account = acme.accounts[TenantRole.OWNER]
        token = form_token((await client.get("/login?next=/projects", headers=HTML)).text)
        response = await post_form(
            client,
            "/login",
            {
                "email": account.email,
                "password": account.password,
                "_csrf": token,
                "next": "/projects",
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/projects"
        assert response.cookies.get("cp_session")
        assert (await client.get("/projects", headers=HTML)).status_code == 200

    @pytest.mark.parametrize(
        "next_path",
        ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"],
    )
    async def test_next_never_leaves_the_site(
        self, client: Client, acme: Tenant, next_path: str
    ) -> None:
        account = acme.accounts[TenantRole.OWNER]
        token = form_token((await client.get("/login", headers=HTML)).text)
        response = await post_form(
            client,
            "/login",
            {
                "email": account.email,
                "password": account.password,
                "_csrf": token,
                "next": next_path,
            },
        )
        assert response.headers["location"] == "/dashboard"

    async def test_the_api_login_rate_limit_applies_to_the_form(
        self, app: Litestar, client: Client, acme: Tenant
    ) -> None:
        app.state.login_limiter = SlidingWindowLimiter(2)
        token = form_token((await client.get("/login", headers=HTML)).text)
        form = {"email": acme.accounts[TenantRole.OWNER].email, "password": "x", "_csrf": token}
        assert (await post_form(client, "/login", form)).status_code == 401
        assert (await post_form(client, "/login", form)).status_code == 401
        limited = await post_form(client, "/login", form)
        assert limited.status_code == 429
        assert "Too many sign-in attempts" in text_of(limited.text)
        assert int(limited.headers["retry-after"]) >= 1

    async def test_single_sign_on_button_appears_when_configured(
        self, settings: Settings, clock: OffsetClock
    ) -> None:
        sso = settings.model_copy(
            update={"oidc_issuer": "http://127.0.0.1:9", "oidc_display_name": "Acme ID"}
        )
        async with AsyncTestClient(
            app=create_app(sso, clock=clock, configure_logs=False), base_url="http://127.0.0.1"
        ) as sso_client:
            page = await sso_client.get("/login?next=/projects", headers=HTML)
        assert "Sign in with Acme ID" in text_of(page.text)
        assert 'href="/auth/oidc/login?next=%2Fprojects"' in page.text

    async def test_sign_out_ends_the_session(self, client: Client, acme: Tenant) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.OWNER])
        response = await post_form(client, "/logout", {"_csrf": csrf})
        assert response.status_code == 303
        assert response.headers["location"] == "/login?signed_out=1"
        again = await client.get("/dashboard", headers=HTML, follow_redirects=False)
        assert again.status_code == 303


class TestAnonymousAndErrors:
    async def test_anonymous_dashboard_redirects_to_login_with_next(self, client: Client) -> None:
        response = await client.get("/dashboard", headers=HTML, follow_redirects=False)
        assert response.status_code == 303
        location = urlsplit(response.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query) == {"next": ["/dashboard"]}

    async def test_root_goes_to_login_or_dashboard(self, client: Client, acme: Tenant) -> None:
        anonymous = await client.get("/", headers=HTML, follow_redirects=False)
        assert anonymous.headers["location"] == "/login"
        await sign_in(client, acme.accounts[TenantRole.MEMBER])
        signed_in = await client.get("/", headers=HTML, follow_redirects=False)
        assert signed_in.headers["location"] == "/dashboard"

    async def test_unknown_page_is_a_friendly_404(self, client: Client) -> None:
        response = await client.get("/no-such-page", headers=HTML)
        assert response.status_code == 404
        assert "Page not found" in text_of(response.text)

    async def test_api_errors_stay_problem_json_for_browsers(self, client: Client) -> None:
        response = await client.get("/api/v1/me", headers=HTML)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_pages_send_the_strict_content_security_policy(self, client: Client) -> None:
        response = await client.get("/login", headers=HTML)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "<script>" not in response.text
        assert " style=" not in response.text

    async def test_static_assets_are_served_locally(self, client: Client) -> None:
        css = await client.get("/static/css/portal.css")
        chart = await client.get("/static/vendor/chartjs/chart.umd.min.js")
        assert css.status_code == 200
        assert "--color-primary" in css.text
        assert chart.status_code == 200
        assert "Chart.js v4" in chart.text[:200]


class TestDashboard:
    async def test_counts_reflect_the_database(
        self, client: Client, db: AsyncSession, acme: Tenant
    ) -> None:
        await make_project(db, acme.org_id, "training")
        await make_api_key(db, acme)
        await make_api_key(db, acme, expires_in=timedelta(days=-1))
        await make_api_key(db, acme)
        newest = (await db.execute(select(ApiKey).order_by(ApiKey.created_at.desc()))).scalars()
        next(iter(newest)).revoked_at = datetime.now(UTC)
        await db.commit()
        await sign_in(client, acme.accounts[TenantRole.OWNER])
        page = (await client.get("/dashboard", headers=HTML)).text
        shown = stats(page)
        assert shown["Projects"] == "2"
        assert shown["Members"] == str(len(TenantRole))
        assert shown["Active API keys"] == "1"
        assert "Acme" in text_of(page)

    async def test_a_member_does_not_see_the_member_count(
        self, client: Client, acme: Tenant
    ) -> None:
        await sign_in(client, acme.accounts[TenantRole.MEMBER])
        shown = stats((await client.get("/dashboard", headers=HTML)).text)
        assert shown["Members"] == "—"
        assert shown["Projects"] == "1"

    async def test_a_user_without_an_organization_is_told_so(
        self, client: Client, db: AsyncSession
    ) -> None:
        loner = await make_user(db)
        await db.commit()
        await sign_in(client, loner)
        page = await client.get("/dashboard", headers=HTML)
        assert page.status_code == 200
        assert "You are not a member of any organization yet." in text_of(page.text)
        assert stats(page.text) == {}

    async def test_regions_show_jurisdiction_and_sovereignty_group(
        self, client: Client, fleet: Fleet
    ) -> None:
        await sign_in(client, fleet.owner)
        page = text_of((await client.get("/dashboard", headers=HTML)).text)
        assert "Northern Sweden (EU) se-north-1 SE EU" in page
        assert "US East (non-sovereign) us-east-1 US None (not sovereign)" in page
        assert "Fleet" not in page

    async def test_operators_see_fleet_totals_and_charts(
        self, client: Client, db: AsyncSession, fleet: Fleet, clock: OffsetClock
    ) -> None:
        await sign_in(client, fleet.admin)
        page = (await client.get("/dashboard", headers=HTML)).text
        shown = stats(page)
        assert shown["Nodes"] == "42"
        assert shown["GPUs"] == "296"
        gpus = chart_data(page, "chart-gpus")
        assert gpus["labels"] == ["ca-qc-1", "se-north-1", "us-east-1"]
        assert sum(sum(s["values"]) for s in gpus["series"]) == 296
        changes = chart_data(page, "chart-changes")
        events = len((await db.execute(select(NodeEvent.id))).all())
        assert sum(sum(s["values"]) for s in changes["series"]) == events
        assert len(changes["labels"]) == 31


class TestProjects:
    async def test_creating_a_project_opens_it(self, client: Client, acme: Tenant) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.ADMIN])
        response = await post_form(
            client, "/projects", {"name": "Vision", "slug": "vision", "_csrf": csrf}
        )
        assert response.status_code == 303
        page = await client.get(response.headers["location"], headers=HTML)
        assert "<h1" in page.text
        assert "Vision" in text_of(page.text)

    async def test_a_taken_slug_is_shown_next_to_the_field(
        self, client: Client, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.ADMIN])
        response = await post_form(
            client, "/projects", {"name": "Again", "slug": "default", "_csrf": csrf}
        )
        assert response.status_code == 409
        assert field_error(response.text, "project-slug") == "Error: already taken"
        assert 'value="Again"' in response.text

    async def test_a_malformed_slug_is_explained(self, client: Client, acme: Tenant) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.ADMIN])
        response = await post_form(
            client, "/projects", {"name": "X", "slug": "Not A Slug", "_csrf": csrf}
        )
        assert response.status_code == 400
        assert "lower-case letters" in field_error(response.text, "project-slug")

    async def test_an_auditor_has_no_create_form_and_cannot_post(
        self, client: Client, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.AUDITOR])
        page = await client.get("/projects", headers=HTML)
        assert "Create a project" not in page.text
        refused = await post_form(client, "/projects", {"name": "X", "slug": "x", "_csrf": csrf})
        assert refused.status_code == 403
        assert "You do not have access" in text_of(refused.text)

    async def test_a_new_keys_secret_is_shown_once(
        self, client: Client, db: AsyncSession, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.ADMIN])
        created = await post_form(
            client,
            f"/projects/{acme.project_id}/api-keys",
            {"name": "ci", "role": "member", "expires_in_days": "30", "_csrf": csrf},
        )
        assert created.status_code == 201
        assert created.headers["cache-control"] == "no-store"
        match = re.search(r'id="api-key-secret">(cpk_[^<]+)</code>', created.text)
        assert match
        secret = match.group(1)
        assert (await client.get("/api/v1/me", headers=bearer(secret))).status_code == 200
        project_page = await client.get(f"/projects/{acme.project_id}", headers=HTML)
        assert secret not in project_page.text
        assert "ci" in text_of(project_page.text)
        key = (await db.execute(select(ApiKey).where(ApiKey.name == "ci"))).scalar_one()
        assert key.role == TenantRole.MEMBER

    async def test_a_key_with_its_own_gateway_limits_and_a_bad_limit_next_to_its_field(
        self, client: Client, db: AsyncSession, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.ADMIN])
        form = {"name": "limited", "role": "member", "expires_in_days": "30", "_csrf": csrf}
        bad = await post_form(
            client, f"/projects/{acme.project_id}/api-keys", {**form, "tokens_per_minute": "-5"}
        )
        assert bad.status_code == 400
        assert "whole number" in (field_error(bad.text, "key-tokens_per_minute") or "")
        made = await post_form(
            client,
            f"/projects/{acme.project_id}/api-keys",
            {**form, "requests_per_second": "2.5", "tokens_per_minute": "900"},
        )
        assert made.status_code == 201, made.text
        key = (await db.execute(select(ApiKey).where(ApiKey.name == "limited"))).scalar_one()
        assert (key.requests_per_second, key.tokens_per_minute) == (2.5, 900)

    async def test_a_key_above_your_role_is_refused_next_to_the_role(
        self, client: Client, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.MEMBER])
        response = await post_form(
            client,
            f"/projects/{acme.project_id}/api-keys",
            {"name": "too strong", "role": "owner", "expires_in_days": "30", "_csrf": csrf},
        )
        assert response.status_code == 403
        assert field_error(response.text, "key-role") == "Error: above your own role"

    async def test_revoking_a_key_stops_it_at_once(self, client: Client, acme: Tenant) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.ADMIN])
        created = await post_form(
            client,
            f"/projects/{acme.project_id}/api-keys",
            {"name": "short-lived", "expires_in_days": "7", "_csrf": csrf},
        )
        secret = re.search(r'id="api-key-secret">(cpk_[^<]+)</code>', created.text)
        assert secret
        assert (await client.get("/api/v1/me", headers=bearer(secret.group(1)))).status_code == 200
        project_page = (await client.get(f"/projects/{acme.project_id}", headers=HTML)).text
        revoke_path = re.search(r'action="(/api-keys/[^"]+/revoke)"', project_page)
        assert revoke_path
        revoked = await post_form(client, revoke_path.group(1), {"_csrf": csrf})
        assert revoked.status_code == 303
        after = await client.get(revoked.headers["location"], headers=HTML)
        assert "was revoked" in text_of(after.text)
        assert "Revoked" in text_of(after.text)
        assert (await client.get("/api/v1/me", headers=bearer(secret.group(1)))).status_code == 401


class TestOrganizationSwitcher:
    async def test_switching_changes_the_current_organization(
        self, client: Client, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.OWNER])
        made = await client.post(
            "/api/v1/orgs",
            json={"slug": "zeta-lab", "name": "Zeta Lab"},
            headers=HTML | {"X-CSRF-Token": csrf},
        )
        assert made.status_code == 201, made.text
        zeta = made.json()["id"]
        switched = await post_form(
            client, "/orgs/switch", {"org_id": zeta, "next": "/dashboard", "_csrf": csrf}
        )
        assert switched.status_code == 303
        assert switched.headers["location"] == "/dashboard"
        page = (await client.get("/dashboard", headers=HTML)).text
        assert f'<option value="{zeta}" selected>Zeta Lab</option>' in page
        assert stats(page)["Projects"] == "0"

    async def test_a_renamed_organization_shows_its_new_name_on_the_next_page(
        self, client: Client, acme: Tenant
    ) -> None:
        csrf = await sign_in(client, acme.accounts[TenantRole.OWNER])
        before = (await client.get("/dashboard", headers=HTML)).text
        renamed = await client.patch(
            f"/api/v1/orgs/{acme.org_id}",
            json={"name": "Acme Research"},
            headers=HTML | {"X-CSRF-Token": csrf},
        )
        assert renamed.status_code == 200, renamed.text
        after = (await client.get("/dashboard", headers=HTML)).text
        assert f'<option value="{acme.org_id}" selected>Acme Research</option>' not in before
        assert f'<option value="{acme.org_id}" selected>Acme Research</option>' in after

    async def test_an_organization_you_are_not_in_is_not_found(
        self, client: Client, db: AsyncSession, acme: Tenant
    ) -> None:
        other = await make_org(db, "other", roles=(TenantRole.OWNER,))
        await db.commit()
        csrf = await sign_in(client, acme.accounts[TenantRole.OWNER])
        response = await post_form(client, "/orgs/switch", {"org_id": other.org_id, "_csrf": csrf})
        assert response.status_code == 404


class TestInventory:
    async def test_a_customer_gets_a_403_page(self, client: Client, fleet: Fleet) -> None:
        await sign_in(client, fleet.owner)
        response = await client.get("/operator/inventory", headers=HTML)
        assert response.status_code == 403
        assert "You do not have access to this page" in text_of(response.text)
        assert 'href="/operator/inventory"' not in response.text

    async def test_customers_do_not_see_the_operator_menu(
        self, client: Client, fleet: Fleet
    ) -> None:
        await sign_in(client, fleet.owner)
        page = (await client.get("/dashboard", headers=HTML)).text
        assert 'href="/operator/inventory"' not in page

    async def test_filters_by_region_and_state(self, client: Client, fleet: Fleet) -> None:
        await sign_in(client, fleet.admin)
        page = await client.get(
            "/operator/inventory?region=ca-qc-1&state=maintenance", headers=HTML
        )
        assert page.status_code == 200
        assert node_rows(page.text) == ["qc-h100-10"]
        assert '<option value="maintenance" selected>' in page.text

    async def test_filters_by_gpu_model_and_hostname_prefix(
        self, client: Client, fleet: Fleet
    ) -> None:
        await sign_in(client, fleet.admin)
        by_model = await client.get("/operator/inventory?gpu_model=h200", headers=HTML)
        assert node_rows(by_model.text) == [f"qc-h200-{n:02d}" for n in range(1, 5)]
        by_prefix = await client.get("/operator/inventory?hostname=us-l40s", headers=HTML)
        assert node_rows(by_prefix.text) == [f"us-l40s-{n:02d}" for n in range(1, 5)]

    async def test_pages_follow_the_cursor_links(self, client: Client, fleet: Fleet) -> None:
        await sign_in(client, fleet.admin)
        seen: list[str] = []
        path: str | None = "/operator/inventory?hostname=qc-h100&limit=4"
        while path:
            page = (await client.get(path, headers=HTML)).text
            seen.extend(node_rows(page))
            nxt = re.search(r'<a class="button button--secondary" href="([^"]+)" rel="next">', page)
            path = html.unescape(nxt.group(1)) if nxt else None
        assert seen == [f"qc-h100-{n:02d}" for n in range(1, 11)]

    async def test_an_unknown_state_is_flagged_on_the_filter(
        self, client: Client, fleet: Fleet
    ) -> None:
        await sign_in(client, fleet.admin)
        response = await client.get("/operator/inventory?state=melting", headers=HTML)
        assert response.status_code == 400
        assert field_error(response.text, "filter-state") == (
            "Error: Choose one of the listed states."
        )

    async def test_node_page_shows_gpus_and_history(
        self, client: Client, db: AsyncSession, fleet: Fleet
    ) -> None:
        await sign_in(client, fleet.admin)
        page = text_of(
            (
                await client.get(f"/operator/nodes/{await node_id(db, 'qc-h100-09')}", headers=HTML)
            ).text
        )
        assert "qc-h100-09" in page
        assert "Draining since" in page
        assert page.count("GPU-") == 8
        assert "Available → to Draining demo seed" in page


class TestNodeTransitions:
    async def test_draining_a_node_records_the_reason(
        self, client: Client, db: AsyncSession, fleet: Fleet
    ) -> None:
        csrf = await sign_in(client, fleet.ca)
        node = await node_id(db, "qc-h100-01")
        response = await post_form(
            client,
            f"/operator/nodes/{node}/transitions",
            {"to": "draining", "reason": "CHG-7 swap PSU", "_csrf": csrf},
        )
        assert response.status_code == 303
        page = await client.get(response.headers["location"], headers=HTML)
        assert "The node is now draining." in text_of(page.text)
        assert "CHG-7 swap PSU" in text_of(page.text)
        assert await node_state(db, node) == "draining"

    async def test_a_transition_the_lifecycle_forbids_shows_why(
        self, client: Client, db: AsyncSession, fleet: Fleet
    ) -> None:
        csrf = await sign_in(client, fleet.admin)
        node = await node_id(db, "qc-h100-01")
        response = await post_form(
            client,
            f"/operator/nodes/{node}/transitions",
            {"to": "burn-in", "reason": "try it", "_csrf": csrf},
        )
        assert response.status_code == 409
        shown = text_of(response.text)
        assert "A node cannot go from available to burn-in" in shown
        assert field_error(response.text, "transition-to") == "Error: not allowed from available"
        assert 'value="try it"' in response.text

    async def test_a_missing_reason_is_flagged_on_the_field(
        self, client: Client, db: AsyncSession, fleet: Fleet
    ) -> None:
        csrf = await sign_in(client, fleet.admin)
        node = await node_id(db, "qc-h100-01")
        response = await post_form(
            client,
            f"/operator/nodes/{node}/transitions",
            {"to": "draining", "reason": "", "_csrf": csrf},
        )
        assert response.status_code == 400
        assert field_error(response.text, "transition-reason") == "Error: This field is required."

    async def test_operators_act_only_in_their_home_jurisdiction(
        self, client: Client, db: AsyncSession, fleet: Fleet
    ) -> None:
        csrf = await sign_in(client, fleet.se)
        node = await node_id(db, "qc-h100-01")
        page = await client.get(f"/operator/nodes/{node}", headers=HTML)
        assert "operators act only in their home jurisdiction" in text_of(page.text)
        assert "/transitions" not in page.text
        response = await post_form(
            client,
            f"/operator/nodes/{node}/transitions",
            {"to": "draining", "reason": "not mine", "_csrf": csrf},
        )
        assert response.status_code == 403
        assert "home jurisdiction" in text_of(response.text)
        assert await node_state(db, node) == "available"
