"""Every portal page and form, called by every kind of caller: the same access model as the
API, in HTML. Portal routes are not in the OpenAPI document, so they are listed from the
app's own routing table and the test fails when a page appears without an expectation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.authz import ACCESS_KEY, Access
from control_plane.identity.roles import ProviderRole, TenantRole, provider_allows, tenant_allows
from control_plane.settings import Settings
from tests.integration.security.conftest import Caller, World, build_catalog, build_world

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html"}
# Not portal pages: the API, its schema, health/metrics, static files and the SSO hops
# (covered by test_route_isolation.py, test_basics.py and test_sso.py).
NOT_PAGES = (
    "/api/",
    "/schema",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static",
    "/auth/oidc",
    "/v1/",
    "/v2/",
)


@dataclass(frozen=True)
class Page:
    method: str
    path: str  # with the victim's ids filled in
    form: dict[str, str]


def pages(world: World) -> dict[tuple[str, str], Page]:
    """One call per portal route (route template → call with the victim's real ids)."""
    project, key, node = world.victim.project_id, world.victim_key_id, world.node_id
    tenancy = world.tenancy_id
    assert world.access is not None
    access, org = world.access, world.victim.org_id
    return {
        # Operator access first: the decisions below end operator-ca's grant.
        ("GET", "/operator/access"): Page("GET", "/operator/access", {}),
        ("POST", "/operator/access"): Page(
            "POST",
            "/operator/access",
            {
                "org_id": org,
                "resource_type": "tenancy",
                "resource_id": "ten_portal_isolation",
                "reason_code": "incident_response",
                "justification": "portal isolation",
                "duration_minutes": "60",
            },
        ),
        ("POST", "/operator/access/{request_id:str}/withdraw"): Page(
            "POST", f"/operator/access/{access.pending_id}/withdraw", {}
        ),
        ("GET", "/operator/access/support"): Page(
            "GET", f"/operator/access/support?org_id={org}", {}
        ),
        ("GET", "/access"): Page("GET", "/access", {}),
        ("GET", "/access/report"): Page("GET", "/access/report", {}),
        ("GET", "/access/report.csv"): Page("GET", "/access/report.csv", {}),
        ("GET", "/access/requests/{request_id:str}"): Page(
            "GET", f"/access/requests/{access.grant_id}", {}
        ),
        ("POST", "/access/requests/{request_id:str}/approve"): Page(
            "POST", f"/access/requests/{access.pending_id}/approve", {}
        ),
        ("POST", "/access/requests/{request_id:str}/deny"): Page(
            "POST", f"/access/requests/{access.pending_id}/deny", {"reason": "isolation"}
        ),
        ("POST", "/access/requests/{request_id:str}/revoke"): Page(
            "POST", f"/access/requests/{access.grant_id}/revoke", {}
        ),
        ("POST", "/access/requests/{request_id:str}/review"): Page(
            "POST", f"/access/requests/{access.break_glass_id}/review", {"verdict": "accepted"}
        ),
        ("POST", "/access/notifications/{notification_id:str}/acknowledge"): Page(
            "POST", f"/access/notifications/{access.notification_id}/acknowledge", {}
        ),
        ("GET", "/"): Page("GET", "/", {}),
        ("GET", "/login"): Page("GET", "/login", {}),
        ("POST", "/login"): Page("POST", "/login", {"email": "x@y.z", "password": "nope"}),
        ("POST", "/logout"): Page("POST", "/logout", {}),
        ("POST", "/orgs/switch"): Page("POST", "/orgs/switch", {"org_id": world.victim.org_id}),
        ("GET", "/dashboard"): Page("GET", "/dashboard", {}),
        ("GET", "/projects"): Page("GET", "/projects", {}),
        ("POST", "/projects"): Page("POST", "/projects", {"slug": "made-here", "name": "Made"}),
        ("GET", "/projects/{project_id:str}"): Page("GET", f"/projects/{project}", {}),
        ("POST", "/projects/{project_id:str}/api-keys"): Page(
            "POST", f"/projects/{project}/api-keys", {"name": "from-portal"}
        ),
        ("POST", "/api-keys/{key_id:str}/revoke"): Page("POST", f"/api-keys/{key}/revoke", {}),
        ("GET", "/operator/inventory"): Page("GET", "/operator/inventory", {}),
        ("GET", "/operator/nodes/{node_id:str}"): Page("GET", f"/operator/nodes/{node}", {}),
        ("POST", "/operator/nodes/{node_id:str}/transitions"): Page(
            "POST", f"/operator/nodes/{node}/transitions", {"to": "draining", "reason": "test"}
        ),
        ("GET", "/audit"): Page("GET", "/audit", {}),
        ("GET", "/audit/export"): Page("GET", "/audit/export", {}),
        ("GET", "/keys"): Page("GET", "/keys", {}),
        ("POST", "/keys/rotate"): Page("POST", "/keys/rotate", {}),
        ("POST", "/keys/secrets"): Page(
            "POST", "/keys/secrets", {"name": "portal-made", "kind": "other", "value": "v"}
        ),
        ("POST", "/keys/secrets/delete"): Page(
            "POST", "/keys/secrets/delete", {"secret_id": world.victim_secret_id}
        ),
        ("GET", "/residency"): Page("GET", "/residency", {}),
        ("POST", "/residency"): Page(
            "POST", "/residency", {"action": "preview", "template": "canada-sovereign"}
        ),
        ("GET", "/residency/report"): Page("GET", "/residency/report", {}),
        ("GET", "/pools"): Page("GET", "/pools", {}),
        ("GET", "/operator/pools"): Page("GET", "/operator/pools?region=ca-qc-1", {}),
        ("POST", "/operator/pools"): Page(
            "POST",
            "/operator/pools",
            {"region": "ca-qc-1", "name": "iso-portal", "timezone": "UTC", "drain_minutes": "10"},
        ),
        ("POST", "/operator/pools/{pool_id:str}/windows"): Page(
            "POST",
            f"/operator/pools/{world.pool_id}/windows",
            {"region": "ca-qc-1", "org_id": world.victim.org_id, "start": "10:00", "end": "11:00"},
        ),
        ("POST", "/operator/pools/{pool_id:str}/windows/{window_id:str}/delete"): Page(
            "POST",
            f"/operator/pools/{world.pool_id}/windows/{world.pool_window_id}/delete",
            {"region": "ca-qc-1"},
        ),
        ("GET", "/operator/billing"): Page("GET", "/operator/billing?region=ca-qc-1", {}),
        ("POST", "/operator/billing/price-books"): Page(
            "POST",
            "/operator/billing/price-books",
            {
                "region": "ca-qc-1",
                "month": "2026-10",
                "book": '{"effective_from": "2031-01-01T00:00:00Z", '
                '"rates": [{"usage_type": "tokens_in", "unit_price": "1"}]}',
            },
        ),
        ("POST", "/operator/billing/runs"): Page(
            "POST", "/operator/billing/runs", {"region": "ca-qc-1", "month": "2026-10"}
        ),
        ("POST", "/operator/billing/invoices/{invoice_id:str}/{action:str}"): Page(
            "POST",
            f"/operator/billing/invoices/{world.final_invoice_id}/paid",
            {"region": "ca-qc-1", "month": "2026-10"},
        ),
        ("POST", "/operator/billing/deliveries/{message_id:str}/retry"): Page(
            "POST",
            f"/operator/billing/deliveries/{world.dead_delivery_id}/retry",
            {"region": "ca-qc-1", "month": "2026-10"},
        ),
        ("GET", "/tenancies"): Page("GET", "/tenancies", {}),
        ("GET", "/tenancies/new"): Page("GET", "/tenancies/new?gpu_memory_gib=80", {}),
        ("POST", "/tenancies"): Page(
            "POST",
            "/tenancies",
            {
                "name": "portal-made",
                "kind": "slurm",
                "region": "ca-qc-1",
                "shape": "",
                "gpu_model": "h100",
                "gpus_per_node": "1",
            },
        ),
        ("GET", "/tenancies/{tenancy_id:str}"): Page("GET", f"/tenancies/{tenancy}", {}),
        ("GET", "/tenancies/{tenancy_id:str}/live"): Page("GET", f"/tenancies/{tenancy}/live", {}),
        ("POST", "/tenancies/{tenancy_id:str}/resize"): Page(
            "POST", f"/tenancies/{tenancy}/resize", {"gpus_per_node": "2"}
        ),
        ("POST", "/tenancies/{tenancy_id:str}/release"): Page(
            "POST", f"/tenancies/{tenancy}/release", {}
        ),
        **_machine_pages(world),
        **_endpoint_pages(world),
        **_billing_pages(world),
        **_insights_pages(world),
    }


def _machine_pages(world: World) -> dict[tuple[str, str], Page]:
    """The victim's VM (power, console) and namespace (kubeconfig shown once, then rotated:
    later callers get the 409 of a kubeconfig already shown, which is fine)."""
    vm, k8s = f"/tenancies/{world.vm_tenancy_id}", f"/tenancies/{world.k8s_tenancy_id}"
    return {
        ("POST", "/tenancies/{tenancy_id:str}/power"): Page(
            "POST", f"{vm}/power", {"action": "reboot"}
        ),
        ("POST", "/tenancies/{tenancy_id:str}/console"): Page("POST", f"{vm}/console", {}),
        ("POST", "/tenancies/{tenancy_id:str}/credential/reveal"): Page(
            "POST", f"{k8s}/credential/reveal", {}
        ),
        ("POST", "/tenancies/{tenancy_id:str}/credential/rotate"): Page(
            "POST", f"{k8s}/credential/rotate", {}
        ),
    }


def _insights_pages(world: World) -> dict[tuple[str, str], Page]:
    """The organization's waste page and the victim's open advice (snoozed, dismissed and
    applied in turn: later callers get the 409 of decided advice, which is fine)."""
    rec = f"/insights/{world.recommendation_id}"
    return {
        ("GET", "/insights"): Page("GET", "/insights", {}),
        ("POST", "/insights/analyse"): Page("POST", "/insights/analyse", {}),
        ("POST", "/insights/{rec_id:str}/snooze"): Page("POST", f"{rec}/snooze", {"days": "7"}),
        ("POST", "/insights/{rec_id:str}/dismiss"): Page(
            "POST", f"{rec}/dismiss", {"reason": "isolation"}
        ),
        ("POST", "/insights/{rec_id:str}/apply"): Page("POST", f"{rec}/apply", {}),
        ("GET", "/operator/fleet"): Page("GET", "/operator/fleet", {}),
    }


def _billing_pages(world: World) -> dict[tuple[str, str], Page]:
    """The victim's finalized invoice and budget, and the organization's billing pages."""
    invoice = f"/billing/invoices/{world.final_invoice_id}"
    budget = {"currency": "CAD", "amount": "100", "project_id": "", "thresholds": "50, 100"}
    profile = {"legal_name": "Isolation Inc.", "country": "CA", "subdivision": "QC",
               "tax_id": "", "email": "ap@isolation.test"}  # fmt: skip
    return {
        ("GET", "/billing"): Page("GET", "/billing", {}),
        ("GET", "/billing/usage"): Page("GET", "/billing/usage?days=7&group=project", {}),
        ("GET", "/billing/invoices"): Page("GET", "/billing/invoices", {}),
        ("GET", "/billing/invoices/{invoice_id:str}"): Page("GET", invoice, {}),
        ("GET", "/billing/invoices/{invoice_id:str}/print"): Page("GET", f"{invoice}/print", {}),
        ("GET", "/billing/invoices/{invoice_id:str}/invoice.csv"): Page(
            "GET", f"{invoice}/invoice.csv", {}
        ),
        ("GET", "/billing/budgets"): Page("GET", "/billing/budgets", {}),
        ("POST", "/billing/budgets"): Page("POST", "/billing/budgets", budget),
        ("POST", "/billing/budgets/delete"): Page(
            "POST", "/billing/budgets/delete", {"budget_id": world.budget_id}
        ),
        ("GET", "/billing/profile"): Page("GET", "/billing/profile", {}),
        ("POST", "/billing/profile"): Page("POST", "/billing/profile", profile),
    }


def _endpoint_pages(world: World) -> dict[tuple[str, str], Page]:
    """The victim's endpoint (version 2 pending) and the organization's endpoint pages."""
    ep = f"/endpoints/{world.endpoint_name}"
    new = {"name": "portal-ep", "region": "ca-qc-1", "model": world.model_uri,
           "gpu_model": "h100", "size": "quarter", "min_replicas": "0", "max_replicas": "1",
           "scale_to_zero_after_s": ""}  # fmt: skip
    return {
        ("GET", "/endpoints"): Page("GET", "/endpoints", {}),
        ("GET", "/endpoints/new"): Page("GET", "/endpoints/new", {}),
        ("POST", "/endpoints"): Page("POST", "/endpoints", new),
        ("POST", "/endpoints/governance"): Page(
            "POST", "/endpoints/governance", {"require_approval": "false"}
        ),
        ("GET", "/endpoints/{name:str}"): Page("GET", ep, {}),
        ("GET", "/endpoints/{name:str}/live"): Page("GET", f"{ep}/live", {}),
        ("POST", "/endpoints/{name:str}/scale"): Page(
            "POST", f"{ep}/scale", {"min_replicas": "0", "max_replicas": "2", "replicas": ""}
        ),
        ("POST", "/endpoints/{name:str}/split"): Page(
            "POST", f"{ep}/split", {"percent_1": "100", "percent_2": "0"}
        ),
        ("POST", "/endpoints/{name:str}/versions/{number:int}/decision"): Page(
            "POST", f"{ep}/versions/2/decision", {"decision": "reject", "note": "isolation"}
        ),
        ("POST", "/endpoints/{name:str}/delete"): Page("POST", f"{ep}/delete", {}),
    }


def portal_routes(app: Litestar) -> dict[tuple[str, str], Access]:
    found = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith(NOT_PAGES):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                found[(method, route.path)] = handler.opt[ACCESS_KEY]
    return found


# Act on the caller's own current organization.
ORG_CONTEXT = (
    "/dashboard",
    "/audit",
    "/audit/export",
    "/projects",
    "/keys",
    "/keys/rotate",
    "/keys/secrets",
    "/keys/secrets/delete",
    "/access",
    "/access/report",
    "/access/report.csv",
    "/residency",
    "/residency/report",
    "/tenancies",
    "/tenancies/new?gpu_memory_gib=80",
    "/pools",
    "/endpoints",
    "/endpoints/new",
    "/endpoints/governance",
    "/billing",
    "/billing/usage?days=7&group=project",
    "/billing/invoices",
    "/billing/budgets",
    "/billing/budgets/delete",
    "/billing/profile",
    "/insights",
    "/insights/analyse",
)
# Operators ask for access from anywhere (the tenant's residency policy decides, not the
# page), and see only their own requests: build_world's pending one is operator-ca's.
OPERATOR_ACCESS = "/operator/access"
ACCESS_REQUEST_OWNER = "operator-ca"
NEEDS_ORG = ("/audit/export",)
NODE_JURISDICTION = "CA"  # where build_world puts the node


def expected(access: Access, caller: Caller, page: Page) -> str:
    """'allowed', 'login' (redirect to sign in), 'denied' (403) or 'hidden' (404)."""
    if access.public:
        return "allowed"
    if caller.kind == "anonymous":
        return "login"
    if page.path == "/orgs/switch":  # names the victim organization
        return "allowed" if caller.victim_role else "hidden"
    if access.permission is not None:
        if page.path in ORG_CONTEXT:
            if caller.victim_role is not None:
                return (
                    "allowed" if tenant_allows(caller.victim_role, access.permission) else "denied"
                )
            if caller.outsider:  # the attacker acts in its own organization, as its admin
                return "allowed" if tenant_allows(TenantRole.ADMIN, access.permission) else "denied"
            # No organization at all: pages show an empty state; a download has nothing to give.
            return "allowed" if page.method == "GET" and page.path not in NEEDS_ORG else "hidden"
        if caller.victim_role is None:
            return "hidden"
        return "allowed" if tenant_allows(caller.victim_role, access.permission) else "denied"
    if access.provider_permission is not None:
        return _provider_expected(access, caller, page)
    return "allowed"


def _provider_expected(access: Access, caller: Caller, page: Page) -> str:
    assert access.provider_permission is not None
    if not provider_allows(caller.provider_role, access.provider_permission):
        return "denied"
    if page.path.startswith(f"{OPERATOR_ACCESS}/acr_"):
        plain = caller.provider_role is ProviderRole.OPERATOR
        return "hidden" if plain and caller.name != ACCESS_REQUEST_OWNER else "allowed"
    if page.path.startswith(OPERATOR_ACCESS):
        return "allowed"
    if page.method == "POST" and caller.home_country not in (None, NODE_JURISDICTION):
        return "denied"  # operators act only in their home jurisdiction
    return "allowed"


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock, settings: Settings) -> World:
    await build_catalog(db, clock)
    built = await build_world(db, clock, settings.model_store_root, settings)
    await db.commit()
    return built


class TestPortalIsolation:
    async def test_every_portal_route_has_an_expectation(self, app: Litestar, world: World) -> None:
        assert set(portal_routes(app)) == set(pages(world))

    async def test_each_caller_gets_what_the_access_model_says(
        self, app: Litestar, client: Client, world: World
    ) -> None:
        routes = portal_routes(app)
        failures = []
        for (method, template), page in pages(world).items():
            if template in ("/logout",):
                continue  # ends the caller's session; covered in test_pages.py
            access = routes[(method, template)]
            for caller in world.callers.values():
                if caller.kind == "api_key":
                    continue  # the portal is for people; keys are covered by the API test
                want = expected(access, caller, page)
                got, text = await self._call(client, caller, page)
                if not _matches(want, got):
                    failures.append(f"{method} {template} as {caller.name}: want {want}, got {got}")
                if caller.outsider and caller.kind != "anonymous":
                    leaked = [m for m in world.victim_markers if m in text and m not in page.path]
                    if leaked:
                        failures.append(f"{method} {template} as {caller.name} leaks {leaked}")
        assert not failures, "\n".join(failures)

    async def test_forms_without_the_csrf_token_are_refused(
        self, client: Client, world: World
    ) -> None:
        owner = world.callers["victim-owner"]
        for page in pages(world).values():
            if page.method != "POST" or page.path == "/login":
                continue
            response = await client.post(
                page.path, data=page.form, headers={**owner.headers, **HTML}
            )
            assert response.status_code == 403, f"{page.path}: {response.status_code}"

    @staticmethod
    async def _call(client: Client, caller: Caller, page: Page) -> tuple[int, str]:
        client.cookies.clear()
        headers = {**caller.headers, **HTML}
        if page.method == "GET":
            response = await client.get(page.path, headers=headers, follow_redirects=False)
        else:
            form = {**page.form, "_csrf": caller.csrf.get("X-CSRF-Token", "")}
            if page.path == "/login":  # anonymous form: double-submit cookie
                form["email"] = f"nobody-{caller.name}@example.test"  # no lockout across calls
                cookie = "; ".join(filter(None, [headers.get("Cookie"), "cp_csrf=t"]))
                headers["Cookie"] = cookie
                form["_csrf"] = "t"
            response = await client.post(
                page.path, data=form, headers=headers, follow_redirects=False
            )
        return response.status_code, response.text


def _matches(want: str, got: int) -> bool:
    if want == "login":
        return got in (302, 303) or got == 401
    if want == "denied":
        return got == 403
    if want == "hidden":
        return got == 404
    return got < 400 or got in (400, 401, 409, 422)  # allowed: form errors are fine
