"""Every operation of the API, called by every kind of caller, answers as the access model says.

The expected outcome of each call comes from one table (``EXPECTATIONS``: the access rule of
each operation) and the permission matrix in ``control_plane.identity.roles``, never from
what the app happens to answer. The callers are anonymous, an admin of another organization
(session and API key), each role of the victim organization (session), a victim API key with
read-only scopes, and the three kinds of provider operator. Path parameters are the victim's
real ids and write bodies are valid, so a 2xx means the action really happened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.authz import ACCESS_KEY, Access
from control_plane.identity.roles import (
    Permission,
    ProviderPermission,
    ProviderRole,
    TenantRole,
    provider_allows,
    tenant_allows,
)
from control_plane.settings import Settings
from tests.fixtures.access import AccessWorld
from tests.fixtures.factories import PASSWORD
from tests.integration.security.conftest import (
    NODE_JURISDICTION,
    NODE_REGION,
    NODE_SITE,
    Caller,
    World,
    build_catalog,
    build_world,
    unique,
)

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
SECURITY_DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class Outcome(StrEnum):
    OK = "2xx"
    UNAUTHENTICATED = "401"
    FORBIDDEN = "403"
    HIDDEN = "404"


@dataclass(frozen=True)
class Rule:
    """Who may call an operation, as the access model documents it (docs/security.md)."""

    access: str  # "public", "node-agent", "authenticated", "tenant" or "provider"
    permission: Permission | None = None
    provider_permission: ProviderPermission | None = None
    # Provider routes that act on a place: plain operators only in their home jurisdiction.
    jurisdiction: str | None = None
    # Session-only routes: what an API key gets instead.
    api_keys: Outcome | None = None
    # Authenticated routes that name the victim's organization: what non-members get.
    outsiders: Outcome | None = None
    # A successful call changes what the next caller would get: each caller gets a new world.
    destructive: bool = False
    # Public routes whose answer here is not a success, the same whoever calls.
    answer: Outcome = Outcome.OK
    # Provider routes on one operator's own record (the caller who made it): other plain
    # operators are told it does not exist; operator-admins oversee every operator's.
    owner: str | None = None

    @property
    def label(self) -> str:
        """The same label as ``Access.label`` of the route declaring this rule."""
        if self.access == "tenant":
            return f"tenant:{self.permission}"
        if self.access == "provider":
            return f"provider:{self.provider_permission}"
        return self.access


PUBLIC = Rule("public")
# Routes only a node agent's credential opens: no user or API key gets in.
NODE_AGENT = Rule("node-agent", answer=Outcome.UNAUTHENTICATED)
AUTHENTICATED = Rule("authenticated")
SSO_OFF = Rule("public", answer=Outcome.HIDDEN)


def tenant(permission: Permission, *, destructive: bool = False) -> Rule:
    return Rule("tenant", permission=permission, destructive=destructive)


def provider(
    permission: ProviderPermission,
    *,
    jurisdiction: str | None = None,
    destructive: bool = False,
    owner: str | None = None,
) -> Rule:
    return Rule(
        "provider",
        provider_permission=permission,
        jurisdiction=jurisdiction,
        destructive=destructive,
        owner=owner,
    )


@dataclass(frozen=True)
class Call:
    path: str
    json: Any = None
    params: dict[str, str] | None = None


Build = Callable[[World, int], Call]


def _import_file(n: int) -> str:
    header = (
        "hostname,region,site,rack,bmc_endpoint,gpu_model,gpu_count,"
        "firmware_version,driver_version,gpu_uuids"
    )
    row = (
        f"iso-import-{n:05d},{NODE_REGION},{NODE_SITE},r09,https://bmc-import-{n}.example.internal,"
        f"l40s,1,96.00.89.00.01,550.127.08,GPU-{n:08d}-1111-2222-3333-444455556666"
    )
    return f"{header}\n{row}\n"


def _org(w: World) -> str:
    return w.victim.org_id


def _project(w: World) -> str:
    return w.victim.project_id


def _access(w: World) -> AccessWorld:
    assert w.access is not None
    return w.access


def _access_request(w: World, n: int, resource: str = "tenancy") -> dict[str, Any]:
    """A valid request body for a resource nobody asked for yet."""
    return {
        "org_id": _org(w),
        "resource_type": resource,
        "resource_id": f"{resource}-iso-{n}",
        "reason_code": "customer_initiated_support",
        "justification": f"Isolation test {n}",
        "duration_minutes": 60,
    }


def _org_access(w: World, tail: str = "") -> str:
    return f"/api/v1/orgs/{_org(w)}/access-requests{tail}"


def _org_notice(w: World, tail: str) -> str:
    return f"/api/v1/orgs/{_org(w)}/access-notifications/{_access(w).notification_id}{tail}"


def _tenancies(w: World, tail: str = "") -> str:
    return f"/api/v1/orgs/{_org(w)}/tenancies{tail}"


def _endpoints(w: World, tail: str = "") -> str:
    return f"/api/v1/orgs/{_org(w)}/endpoints{tail}"


def _pools(w: World, tail: str = "") -> str:
    return f"/api/v1/regions/{NODE_REGION}/pools{tail}"


def _future(n: int) -> str:
    """A price book start later than every earlier call's (books only move forward)."""
    return (datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=n)).isoformat()


def _usage_event(w: World, n: int) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(hours=2)
    return {"id": f"iso-{n}", "source": "isolation", "org_id": _org(w), "type": "gpu_seconds",
            "value": "60", "window_start": start.isoformat(),
            "window_end": (start + timedelta(minutes=1)).isoformat(),
            "dimensions": {"region": NODE_REGION, "gpu_model": "h100"}}  # fmt: skip


def _minute(n: int) -> str:
    """A clock time that differs for each call number."""
    minute = n % (24 * 60)
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _member(w: World) -> str:
    return f"/api/v1/orgs/{_org(w)}/members/{w.second_member.user_id}"


# One row per operation of the OpenAPI document: its rule and a valid call on the victim.
EXPECTATIONS: dict[str, tuple[Rule, Build]] = {
    # Probes and metrics: public so that load balancers and Prometheus need no credential.
    "GET /healthz": (PUBLIC, lambda w, n: Call("/healthz")),
    "GET /readyz": (PUBLIC, lambda w, n: Call("/readyz")),
    "GET /metrics": (PUBLIC, lambda w, n: Call("/metrics")),
    # Sessions.
    "POST /api/v1/auth/login": (
        PUBLIC,
        lambda w, n: Call("/api/v1/auth/login", {"email": w.bystander.email, "password": PASSWORD}),
    ),
    "POST /api/v1/auth/signup": (
        PUBLIC,
        lambda w, n: Call(
            "/api/v1/auth/signup",
            {
                "email": f"signup-{n}@newcomer.test",
                "name": "Newcomer",
                "password": "a long enough passphrase",
                "organization_name": "Newcomer Lab",
                "organization_slug": f"newcomer-{n}",
            },
        ),
    ),
    "POST /api/v1/auth/logout": (AUTHENTICATED, lambda w, n: Call("/api/v1/auth/logout")),
    "POST /api/v1/auth/current-org": (
        # Only a member may switch to an organization; a non-member learns nothing (404).
        # A key has no session to switch and is refused the same way.
        Rule("authenticated", api_keys=Outcome.HIDDEN, outsiders=Outcome.HIDDEN),
        lambda w, n: Call("/api/v1/auth/current-org", {"org_id": _org(w)}),
    ),
    "GET /api/v1/me": (AUTHENTICATED, lambda w, n: Call("/api/v1/me")),
    # Single sign-on is off in this world (tests/integration/identity/test_sso.py runs it
    # against a real provider): every caller, signed in or not, gets the same 404.
    "GET /auth/oidc/login": (SSO_OFF, lambda w, n: Call("/auth/oidc/login")),
    "GET /auth/oidc/callback": (
        SSO_OFF,
        lambda w, n: Call("/auth/oidc/callback", params={"code": "c", "state": "s"}),
    ),
    # Stripe's webhooks: the signature is the authentication; no signing secret is set in
    # this world (tests/integration/billing/test_stripe_webhooks.py sets one): a 404 for all.
    "POST /api/v1/billing/stripe/webhook": (
        Rule("public", answer=Outcome.HIDDEN),
        lambda w, n: Call("/api/v1/billing/stripe/webhook", {"id": "evt_probe"}),
    ),
    # Organizations and members.
    "GET /api/v1/orgs": (AUTHENTICATED, lambda w, n: Call("/api/v1/orgs")),
    "POST /api/v1/orgs": (
        # Any signed-in person may found an organization; a key acts for one, so it may not.
        Rule("authenticated", api_keys=Outcome.FORBIDDEN),
        lambda w, n: Call("/api/v1/orgs", {"slug": f"founded-{n}", "name": "Founded"}),
    ),
    "GET /api/v1/orgs/{org_id}": (
        tenant(Permission.ORG_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}"),
    ),
    "PATCH /api/v1/orgs/{org_id}": (
        tenant(Permission.ORG_UPDATE),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}", {"name": f"Renamed {n}"}),
    ),
    "GET /api/v1/orgs/{org_id}/members": (
        tenant(Permission.MEMBERS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/members"),
    ),
    "POST /api/v1/orgs/{org_id}/members": (
        tenant(Permission.MEMBERS_WRITE),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/members",
            {"email": f"invitee-{n}@elsewhere.test", "role": "member"},
        ),
    ),
    "PATCH /api/v1/orgs/{org_id}/members/{user_id}": (
        tenant(Permission.MEMBERS_WRITE),
        lambda w, n: Call(_member(w), {"role": "auditor"}),
    ),
    "DELETE /api/v1/orgs/{org_id}/members/{user_id}": (
        tenant(Permission.MEMBERS_WRITE, destructive=True),
        lambda w, n: Call(_member(w)),
    ),
    # Projects and API keys.
    "GET /api/v1/projects": (
        tenant(Permission.PROJECTS_READ),
        lambda w, n: Call("/api/v1/projects", params={"org_id": _org(w)}),
    ),
    "POST /api/v1/projects": (
        tenant(Permission.PROJECTS_WRITE),
        lambda w, n: Call(
            "/api/v1/projects", {"slug": f"project-{n}", "name": "Project", "org_id": _org(w)}
        ),
    ),
    "GET /api/v1/projects/{project_id}": (
        tenant(Permission.PROJECTS_READ),
        lambda w, n: Call(f"/api/v1/projects/{_project(w)}"),
    ),
    "PATCH /api/v1/projects/{project_id}": (
        tenant(Permission.PROJECTS_WRITE),
        lambda w, n: Call(f"/api/v1/projects/{_project(w)}", {"description": f"edit {n}"}),
    ),
    "DELETE /api/v1/projects/{project_id}": (
        tenant(Permission.PROJECTS_WRITE, destructive=True),
        lambda w, n: Call(f"/api/v1/projects/{_project(w)}"),
    ),
    "GET /api/v1/projects/{project_id}/api-keys": (
        tenant(Permission.API_KEYS_READ),
        lambda w, n: Call(f"/api/v1/projects/{_project(w)}/api-keys"),
    ),
    "POST /api/v1/projects/{project_id}/api-keys": (
        tenant(Permission.API_KEYS_WRITE),
        lambda w, n: Call(f"/api/v1/projects/{_project(w)}/api-keys", {"name": f"key {n}"}),
    ),
    "GET /api/v1/api-keys/{key_id}": (
        tenant(Permission.API_KEYS_READ),
        lambda w, n: Call(f"/api/v1/api-keys/{w.victim_key_id}"),
    ),
    "POST /api/v1/api-keys/{key_id}/revoke": (
        # Revoking twice answers the same, so one world serves every caller.
        tenant(Permission.API_KEYS_WRITE),
        lambda w, n: Call(f"/api/v1/api-keys/{w.victim_key_id}/revoke"),
    ),
    # The catalog: every signed-in caller reads it, only operator-admins change it.
    # The audit ledger: public keys for anyone; entries and exports for the org's auditors.
    "GET /api/v1/audit/keys": (PUBLIC, lambda w, n: Call("/api/v1/audit/keys")),
    "GET /api/v1/orgs/{org_id}/audit/entries": (
        tenant(Permission.AUDIT_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/audit/entries"),
    ),
    "GET /api/v1/orgs/{org_id}/audit/export": (
        tenant(Permission.AUDIT_EXPORT),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/audit/export"),
    ),
    "GET /api/v1/regions": (AUTHENTICATED, lambda w, n: Call("/api/v1/regions")),
    "GET /api/v1/regions/{code}": (
        AUTHENTICATED,
        lambda w, n: Call(f"/api/v1/regions/{NODE_REGION}"),
    ),
    "POST /api/v1/regions": (
        provider(ProviderPermission.CATALOG_WRITE),
        lambda w, n: Call(
            "/api/v1/regions",
            {
                "code": f"fi-test-{n}",
                "name": "Finland test",
                "jurisdiction": "FI",
                "sovereignty_group": "EU",
                "currency": "EUR",
                "pue": "1.2",
                "grid_intensity_g_per_kwh": 80,
            },
        ),
    ),
    "PATCH /api/v1/regions/{code}": (
        provider(ProviderPermission.CATALOG_WRITE),
        lambda w, n: Call(f"/api/v1/regions/{NODE_REGION}", {"grid_intensity_g_per_kwh": 3}),
    ),
    "POST /api/v1/regions/{code}/sites": (
        provider(ProviderPermission.CATALOG_WRITE),
        lambda w, n: Call(
            f"/api/v1/regions/{NODE_REGION}/sites",
            {"code": f"qc-test-{n}", "name": "Test site", "city": "Québec"},
        ),
    ),
    "GET /api/v1/gpu-models": (AUTHENTICATED, lambda w, n: Call("/api/v1/gpu-models")),
    "POST /api/v1/gpu-models": (
        provider(ProviderPermission.CATALOG_WRITE),
        lambda w, n: Call(
            "/api/v1/gpu-models",
            {
                "code": f"gpu-{n}",
                "name": "Test GPU",
                "vendor": "NVIDIA",
                "generation": "Hopper",
                "memory_gib": 80,
                "tdp_watts": 700,
                "interconnect": "NVLink 4",
            },
        ),
    ),
    # Nodes: provider staff only.
    "GET /api/v1/nodes": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call("/api/v1/nodes", params={"region": NODE_REGION}),
    ),
    "GET /api/v1/nodes/summary": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call("/api/v1/nodes/summary"),
    ),
    "GET /api/v1/nodes/{node_id}": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call(f"/api/v1/nodes/{w.node_id}"),
    ),
    "GET /api/v1/nodes/{node_id}/events": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call(f"/api/v1/nodes/{w.node_id}/events"),
    ),
    "POST /api/v1/nodes/{node_id}/transitions": (
        provider(
            ProviderPermission.NODES_OPERATE, jurisdiction=NODE_JURISDICTION, destructive=True
        ),
        lambda w, n: Call(
            f"/api/v1/nodes/{w.node_id}/transitions",
            {"to": "draining", "reason": "isolation test"},
        ),
    ),
    # Node agents and their credentials (telemetry); the fleet's utilization and stranding.
    "POST /api/v1/telemetry/batches": (
        NODE_AGENT,
        lambda w, n: Call("/api/v1/telemetry/batches", {"batch_id": f"iso-{n}", "samples": []}),
    ),
    "POST /api/v1/nodes/{node_id}/agent-credentials": (
        provider(ProviderPermission.NODES_ENROLL),
        lambda w, n: Call(f"/api/v1/nodes/{w.node_id}/agent-credentials"),
    ),
    "GET /api/v1/nodes/{node_id}/agent-credentials": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call(f"/api/v1/nodes/{w.node_id}/agent-credentials"),
    ),
    "DELETE /api/v1/nodes/{node_id}/agent-credentials/{credential_id}": (
        provider(ProviderPermission.NODES_ENROLL),
        lambda w, n: Call(f"/api/v1/nodes/{w.node_id}/agent-credentials/{w.agent_credential_id}"),
    ),
    "GET /api/v1/fleet/utilization": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call("/api/v1/fleet/utilization"),
    ),
    "GET /api/v1/fleet/stranded": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call("/api/v1/fleet/stranded"),
    ),
    "POST /api/v1/nodes/import": (
        provider(ProviderPermission.NODES_ENROLL),
        lambda w, n: Call("/api/v1/nodes/import", {"format": "csv", "content": _import_file(n)}),
    ),
    # Residency policies (unrestricted: a change that never strands the victim's resources).
    "GET /api/v1/residency-templates": (
        AUTHENTICATED,
        lambda w, n: Call("/api/v1/residency-templates"),
    ),
    "GET /api/v1/orgs/{org_id}/residency-policy": (
        tenant(Permission.POLICY_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/residency-policy"),
    ),
    "PUT /api/v1/orgs/{org_id}/residency-policy": (
        tenant(Permission.POLICY_WRITE),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/residency-policy",
            {"template": "unrestricted", "classification": f"Isolation {n}"},
        ),
    ),
    "GET /api/v1/orgs/{org_id}/residency-policy/versions": (
        tenant(Permission.POLICY_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/residency-policy/versions"),
    ),
    "POST /api/v1/orgs/{org_id}/residency-policy/preview": (
        tenant(Permission.POLICY_READ),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/residency-policy/preview", {"template": "canada-sovereign"}
        ),
    ),
    "POST /api/v1/orgs/{org_id}/residency-policy/evaluate": (
        tenant(Permission.POLICY_READ),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/residency-policy/evaluate", {"region_code": NODE_REGION}
        ),
    ),
    "GET /api/v1/orgs/{org_id}/residency-report": (
        tenant(Permission.POLICY_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/residency-report", params={"format": "csv"}),
    ),
    # Deleting an organization (a signed-in owner only; shreds its keys).
    "DELETE /api/v1/orgs/{org_id}": (
        tenant(Permission.ORG_DELETE, destructive=True),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}", params={"confirm": w.victim.slug}),
    ),
    # Secrets (values write-only) and data keys; the provider's KEK rotation.
    "GET /api/v1/orgs/{org_id}/secrets": (
        tenant(Permission.SECRETS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/secrets"),
    ),
    "POST /api/v1/orgs/{org_id}/secrets": (
        tenant(Permission.SECRETS_WRITE),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/secrets",
            {"name": f"iso-{n}", "kind": "other", "value": f"value {n}"},
        ),
    ),
    "GET /api/v1/orgs/{org_id}/secrets/{secret_id}": (
        tenant(Permission.SECRETS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/secrets/{w.victim_secret_id}"),
    ),
    "PUT /api/v1/orgs/{org_id}/secrets/{secret_id}": (
        tenant(Permission.SECRETS_WRITE),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/secrets/{w.victim_secret_id}", {"value": f"new {n}"}
        ),
    ),
    "DELETE /api/v1/orgs/{org_id}/secrets/{secret_id}": (
        tenant(Permission.SECRETS_WRITE, destructive=True),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/secrets/{w.victim_secret_id}"),
    ),
    "GET /api/v1/orgs/{org_id}/keys": (
        tenant(Permission.SECRETS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/keys"),
    ),
    "POST /api/v1/orgs/{org_id}/keys/rotate": (
        tenant(Permission.SECRETS_WRITE),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/keys/rotate"),
    ),
    "GET /api/v1/provider/secrets": (
        provider(ProviderPermission.SECRETS_MANAGE),
        lambda w, n: Call("/api/v1/provider/secrets"),
    ),
    "POST /api/v1/provider/secrets": (
        provider(ProviderPermission.SECRETS_MANAGE),
        lambda w, n: Call(
            "/api/v1/provider/secrets",
            {"name": f"bmc/iso-{n}", "kind": "bmc_credentials", "value": '{"username": "u"}'},
        ),
    ),
    "PUT /api/v1/provider/secrets/{secret_id}": (
        provider(ProviderPermission.SECRETS_MANAGE),
        lambda w, n: Call(f"/api/v1/provider/secrets/{w.provider_secret_id}", {"value": f"v{n}"}),
    ),
    "DELETE /api/v1/provider/secrets/{secret_id}": (
        provider(ProviderPermission.SECRETS_MANAGE, destructive=True),
        lambda w, n: Call(f"/api/v1/provider/secrets/{w.provider_secret_id}"),
    ),
    "POST /api/v1/regions/{code}/kek/rotate": (
        provider(ProviderPermission.KEYS_MANAGE),
        lambda w, n: Call(f"/api/v1/regions/{NODE_REGION}/kek/rotate"),
    ),
    # Operator access approval. Operators ask (and see their own requests); every operator
    # holds an open support_data grant on the victim, operator-ca a pending request and
    # operator-admin an unreviewed break-glass. Deciding twice answers the same.
    "POST /api/v1/access-requests": (
        provider(ProviderPermission.ACCESS_REQUEST),
        lambda w, n: Call("/api/v1/access-requests", _access_request(w, n)),
    ),
    "GET /api/v1/access-requests": (
        provider(ProviderPermission.ACCESS_REQUEST),
        lambda w, n: Call("/api/v1/access-requests"),
    ),
    "GET /api/v1/access-requests/{request_id}": (
        provider(ProviderPermission.ACCESS_REQUEST, owner="operator-ca"),
        lambda w, n: Call(f"/api/v1/access-requests/{_access(w).pending_id}"),
    ),
    "POST /api/v1/access-requests/{request_id}/withdraw": (
        provider(ProviderPermission.ACCESS_REQUEST, owner="operator-ca"),
        lambda w, n: Call(f"/api/v1/access-requests/{_access(w).pending_id}/withdraw"),
    ),
    "POST /api/v1/break-glass": (
        provider(ProviderPermission.BREAK_GLASS),
        lambda w, n: Call("/api/v1/break-glass", _access_request(w, n, "node_console")),
    ),
    "GET /api/v1/operator/orgs/{org_id}/support-data": (
        provider(ProviderPermission.ACCESS_REQUEST),
        lambda w, n: Call(f"/api/v1/operator/orgs/{_org(w)}/support-data"),
    ),
    "GET /api/v1/orgs/{org_id}/access-requests": (
        tenant(Permission.ACCESS_READ),
        lambda w, n: Call(_org_access(w), params={"state": "pending"}),
    ),
    "GET /api/v1/orgs/{org_id}/access-requests/{request_id}": (
        tenant(Permission.ACCESS_READ),
        lambda w, n: Call(_org_access(w, f"/{_access(w).grant_id}")),
    ),
    "POST /api/v1/orgs/{org_id}/access-requests/{request_id}/approve": (
        tenant(Permission.ACCESS_APPROVE),
        lambda w, n: Call(_org_access(w, f"/{_access(w).pending_id}/approve")),
    ),
    "POST /api/v1/orgs/{org_id}/access-requests/{request_id}/deny": (
        tenant(Permission.ACCESS_APPROVE),
        lambda w, n: Call(
            _org_access(w, f"/{_access(w).pending_id}/deny"), {"reason": "isolation test"}
        ),
    ),
    "POST /api/v1/orgs/{org_id}/access-requests/{request_id}/revoke": (
        tenant(Permission.ACCESS_APPROVE),
        lambda w, n: Call(_org_access(w, f"/{_access(w).grant_id}/revoke")),
    ),
    "POST /api/v1/orgs/{org_id}/access-requests/{request_id}/review": (
        tenant(Permission.ACCESS_APPROVE),
        lambda w, n: Call(
            _org_access(w, f"/{_access(w).break_glass_id}/review"),
            {"verdict": "accepted", "comment": "isolation test"},
        ),
    ),
    "GET /api/v1/orgs/{org_id}/access-report": (
        tenant(Permission.ACCESS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/access-report", params={"format": "csv"}),
    ),
    "GET /api/v1/orgs/{org_id}/access-notifications": (
        tenant(Permission.ACCESS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/access-notifications"),
    ),
    "POST /api/v1/orgs/{org_id}/access-notifications/{notification_id}/acknowledge": (
        tenant(Permission.ACCESS_APPROVE),
        lambda w, n: Call(_org_notice(w, "/acknowledge")),
    ),
    # Tenancies: the victim's own (an active 1-GPU one on the world's node), its quotas and
    # shape suggestions; shapes per region for everyone signed in; shapes and quota rules
    # for operators. Releasing twice answers the same; a resize leaves one pending.
    "GET /api/v1/orgs/{org_id}/tenancies": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(_tenancies(w), params={"state": "active"}),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies": (
        tenant(Permission.TENANCIES_WRITE),
        lambda w, n: Call(
            _tenancies(w),
            {
                "name": f"iso-{n}",
                "kind": "slurm",
                "region": NODE_REGION,
                "gpu_model": "h100",
                "gpus_per_node": 1,
            },
        ),
    ),
    "GET /api/v1/orgs/{org_id}/tenancies/{tenancy_id}": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(_tenancies(w, f"/{w.tenancy_id}")),
    ),
    "GET /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/events": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(_tenancies(w, f"/{w.tenancy_id}/events")),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/resize": (
        tenant(Permission.TENANCIES_WRITE, destructive=True),
        lambda w, n: Call(_tenancies(w, f"/{w.tenancy_id}/resize"), {"gpus_per_node": 2}),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/schedule": (
        tenant(Permission.TENANCIES_WRITE),
        lambda w, n: Call(_tenancies(w, f"/{w.tenancy_id}/schedule"), {"idle_release_minutes": 90}),
    ),
    # Utilization, waste and advice (applying, dismissing, snoozing change the advice's state:
    # each caller gets a fresh world).
    "GET /api/v1/orgs/{org_id}/utilization": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/utilization"),
    ),
    "GET /api/v1/orgs/{org_id}/waste": (
        tenant(Permission.INSIGHTS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/waste"),
    ),
    "GET /api/v1/orgs/{org_id}/recommendations": (
        tenant(Permission.INSIGHTS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/recommendations"),
    ),
    "GET /api/v1/orgs/{org_id}/recommendations/{rec_id}": (
        tenant(Permission.INSIGHTS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/recommendations/{w.recommendation_id}"),
    ),
    "POST /api/v1/orgs/{org_id}/recommendations/analyze": (
        tenant(Permission.INSIGHTS_WRITE),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/recommendations/analyze"),
    ),
    "POST /api/v1/orgs/{org_id}/recommendations/{rec_id}/apply": (
        tenant(Permission.INSIGHTS_WRITE, destructive=True),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/recommendations/{w.recommendation_id}/apply"),
    ),
    "POST /api/v1/orgs/{org_id}/recommendations/{rec_id}/dismiss": (
        tenant(Permission.INSIGHTS_WRITE, destructive=True),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/recommendations/{w.recommendation_id}/dismiss",
            {"reason": "isolation"},
        ),
    ),
    "POST /api/v1/orgs/{org_id}/recommendations/{rec_id}/snooze": (
        tenant(Permission.INSIGHTS_WRITE, destructive=True),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/recommendations/{w.recommendation_id}/snooze", {"days": 3}
        ),
    ),
    # Reaching a running tenancy: the victim's simulated VM and namespace. Showing the
    # kubeconfig consumes it (each caller gets a new world); operators hold grants on the VM.
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/power": (
        tenant(Permission.TENANCIES_WRITE),
        lambda w, n: Call(_tenancies(w, f"/{w.vm_tenancy_id}/power"), {"action": "reboot"}),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/console": (
        tenant(Permission.TENANCIES_WRITE),
        lambda w, n: Call(_tenancies(w, f"/{w.vm_tenancy_id}/console")),
    ),
    "GET /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/credential": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(_tenancies(w, f"/{w.k8s_tenancy_id}/credential")),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/credential/reveal": (
        tenant(Permission.TENANCIES_WRITE, destructive=True),
        lambda w, n: Call(_tenancies(w, f"/{w.k8s_tenancy_id}/credential/reveal")),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/credential/rotate": (
        tenant(Permission.TENANCIES_WRITE),
        lambda w, n: Call(_tenancies(w, f"/{w.k8s_tenancy_id}/credential/rotate")),
    ),
    "POST /api/v1/operator/orgs/{org_id}/tenancies/{tenancy_id}/console": (
        provider(ProviderPermission.NODES_OPERATE),
        lambda w, n: Call(
            f"/api/v1/operator/orgs/{_org(w)}/tenancies/{w.vm_tenancy_id}/console",
            {"purpose": f"isolation test {n}"},
        ),
    ),
    "POST /api/v1/orgs/{org_id}/tenancies/{tenancy_id}/release": (
        tenant(Permission.TENANCIES_WRITE),
        lambda w, n: Call(_tenancies(w, f"/{w.tenancy_id}/release")),
    ),
    "GET /api/v1/orgs/{org_id}/quotas": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/quotas"),
    ),
    "GET /api/v1/orgs/{org_id}/shape-suggestion": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/shape-suggestion",
            params={"gpu_memory_gib": "80", "gpu_count": "1"},
        ),
    ),
    "GET /api/v1/regions/{code}/shapes": (
        AUTHENTICATED,
        lambda w, n: Call(f"/api/v1/regions/{NODE_REGION}/shapes"),
    ),
    "POST /api/v1/regions/{code}/shapes": (
        provider(ProviderPermission.CAPACITY_WRITE),
        lambda w, n: Call(
            f"/api/v1/regions/{NODE_REGION}/shapes",
            {"name": f"iso-{n}", "gpu_model": "h100", "gpus_per_node": 1, "hourly_price": "3.25"},
        ),
    ),
    "DELETE /api/v1/regions/{code}/shapes/{name}": (
        provider(ProviderPermission.CAPACITY_WRITE, destructive=True),
        lambda w, n: Call(f"/api/v1/regions/{NODE_REGION}/shapes/{w.shape_name}"),
    ),
    "GET /api/v1/quotas": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call("/api/v1/quotas"),
    ),
    "PUT /api/v1/quotas": (
        provider(ProviderPermission.CAPACITY_WRITE),
        lambda w, n: Call("/api/v1/quotas", {"max_gpus": 64, "org_id": _org(w)}),
    ),
    # Endpoints: the victim's own (scaled to zero, version 2 pending approval), created
    # from a model in the region's store; model governance of the organization.
    "GET /api/v1/orgs/{org_id}/endpoints": (
        tenant(Permission.ENDPOINTS_READ),
        lambda w, n: Call(_endpoints(w)),
    ),
    "POST /api/v1/orgs/{org_id}/endpoints": (
        tenant(Permission.ENDPOINTS_WRITE),
        lambda w, n: Call(
            _endpoints(w),
            {
                "name": f"iso-new-{n}",
                "region": NODE_REGION,
                "model_uri": w.model_uri,
                "gpu_model": "h100",
                "gpu_milli": 250,
                "min_replicas": 0,
                "max_replicas": 1,
            },
        ),
    ),
    "GET /api/v1/orgs/{org_id}/endpoints/{ref}": (
        tenant(Permission.ENDPOINTS_READ),
        lambda w, n: Call(_endpoints(w, f"/{w.endpoint_name}")),
    ),
    "GET /api/v1/orgs/{org_id}/endpoints/{ref}/metrics": (
        tenant(Permission.ENDPOINTS_READ),
        lambda w, n: Call(_endpoints(w, f"/{w.endpoint_name}/metrics")),
    ),
    "GET /api/v1/orgs/{org_id}/endpoints/{ref}/events": (
        tenant(Permission.ENDPOINTS_READ),
        lambda w, n: Call(_endpoints(w, f"/{w.endpoint_name}/events")),
    ),
    "PUT /api/v1/orgs/{org_id}/endpoints/{ref}/scale": (
        tenant(Permission.ENDPOINTS_WRITE),
        lambda w, n: Call(
            _endpoints(w, f"/{w.endpoint_name}/scale"), {"min_replicas": 0, "max_replicas": 3}
        ),
    ),
    "POST /api/v1/orgs/{org_id}/endpoints/{ref}/versions": (
        tenant(Permission.ENDPOINTS_WRITE, destructive=True),
        lambda w, n: Call(
            _endpoints(w, f"/{w.single_endpoint_name}/versions"), {"model_uri": w.model_uri}
        ),
    ),
    "PUT /api/v1/orgs/{org_id}/endpoints/{ref}/traffic": (
        tenant(Permission.ENDPOINTS_WRITE, destructive=True),
        lambda w, n: Call(
            _endpoints(w, f"/{w.endpoint_name}/traffic"), {"percent": {"1": 100, "2": 0}}
        ),
    ),
    "POST /api/v1/orgs/{org_id}/endpoints/{ref}/versions/{number}/decision": (
        tenant(Permission.MODELS_VALIDATE, destructive=True),
        lambda w, n: Call(
            _endpoints(w, f"/{w.endpoint_name}/versions/2/decision"),
            {"decision": "reject", "note": "isolation"},
        ),
    ),
    "DELETE /api/v1/orgs/{org_id}/endpoints/{ref}": (
        tenant(Permission.ENDPOINTS_WRITE, destructive=True),
        lambda w, n: Call(_endpoints(w, f"/{w.endpoint_name}")),
    ),
    "GET /api/v1/orgs/{org_id}/model-governance": (
        tenant(Permission.ENDPOINTS_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/model-governance"),
    ),
    "PUT /api/v1/orgs/{org_id}/model-governance": (
        tenant(Permission.MODELS_VALIDATE),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/model-governance", {"require_approval": False}),
    ),
    # Pools: operators read and change them; a tenant reads the windows granted to it. New
    # windows go on Sundays, a minute each, so the calls of one test never overlap.
    "GET /api/v1/regions/{code}/pools": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call(_pools(w)),
    ),
    "POST /api/v1/regions/{code}/pools": (
        provider(ProviderPermission.CAPACITY_WRITE),
        lambda w, n: Call(_pools(w), {"name": f"iso-new-{n}", "timezone": "America/Toronto"}),
    ),
    "GET /api/v1/regions/{code}/pools/{pool_id}": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call(_pools(w, f"/{w.pool_id}")),
    ),
    "DELETE /api/v1/regions/{code}/pools/{pool_id}": (
        provider(ProviderPermission.CAPACITY_WRITE, destructive=True),
        lambda w, n: Call(_pools(w, f"/{w.pool_id}")),
    ),
    "PUT /api/v1/regions/{code}/pools/{pool_id}/nodes": (
        provider(ProviderPermission.CAPACITY_WRITE),
        lambda w, n: Call(_pools(w, f"/{w.pool_id}/nodes"), {"node_ids": [w.node_id]}),
    ),
    "POST /api/v1/regions/{code}/pools/{pool_id}/windows": (
        provider(ProviderPermission.CAPACITY_WRITE),
        lambda w, n: Call(
            _pools(w, f"/{w.pool_id}/windows"),
            {"org_id": _org(w), "days": ["sun"], "start": _minute(n), "end": _minute(n + 1)},
        ),
    ),
    "DELETE /api/v1/regions/{code}/pools/{pool_id}/windows/{window_id}": (
        provider(ProviderPermission.CAPACITY_WRITE, destructive=True),
        lambda w, n: Call(_pools(w, f"/{w.pool_id}/windows/{w.pool_window_id}")),
    ),
    "GET /api/v1/regions/{code}/pools/{pool_id}/schedule": (
        provider(ProviderPermission.INVENTORY_READ),
        lambda w, n: Call(_pools(w, f"/{w.pool_id}/schedule"), params={"days": "3"}),
    ),
    "GET /api/v1/orgs/{org_id}/pools": (
        tenant(Permission.TENANCIES_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/pools"),
    ),
    # Metering: trusted sources (operator-admins) ingest; tenants read their usage.
    "POST /api/v1/metering/events": (
        provider(ProviderPermission.USAGE_INGEST),
        lambda w, n: Call("/api/v1/metering/events", {"events": [_usage_event(w, n)]}),
    ),
    "GET /api/v1/metering/sources": (
        provider(ProviderPermission.USAGE_INGEST),
        lambda w, n: Call("/api/v1/metering/sources"),
    ),
    "GET /api/v1/orgs/{org_id}/usage": (
        tenant(Permission.USAGE_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/usage", params={"group_by": "gpu_model"}),
    ),
    # Billing: price books for everyone signed in, published by operator-admins; contract
    # terms per organization; invoices run and moved by operators, read by the tenant's
    # billing readers; profile and budgets kept by the tenant's billing writers.
    "GET /api/v1/regions/{code}/price-books": (
        AUTHENTICATED,
        lambda w, n: Call(f"/api/v1/regions/{NODE_REGION}/price-books"),
    ),
    "POST /api/v1/regions/{code}/price-books": (
        provider(ProviderPermission.PRICES_WRITE),
        lambda w, n: Call(
            f"/api/v1/regions/{NODE_REGION}/price-books",
            {
                "effective_from": _future(n),
                "rates": [{"usage_type": "tokens_in", "unit_price": "0.1"}],
            },
        ),
    ),
    "GET /api/v1/billing/orgs/{org_ref}/overrides": (
        provider(ProviderPermission.PRICES_WRITE),
        lambda w, n: Call(f"/api/v1/billing/orgs/{_org(w)}/overrides"),
    ),
    "POST /api/v1/billing/orgs/{org_ref}/overrides": (
        provider(ProviderPermission.PRICES_WRITE),
        lambda w, n: Call(
            f"/api/v1/billing/orgs/{_org(w)}/overrides",
            {
                "region": NODE_REGION,
                "usage_type": "gpu_seconds",
                "gpu_model": "h100",
                "discount_percent": "10",
                "starts_at": "2026-01-01T00:00:00Z",
            },
        ),
    ),
    "GET /api/v1/billing/orgs/{org_ref}/commitments": (
        provider(ProviderPermission.PRICES_WRITE),
        lambda w, n: Call(f"/api/v1/billing/orgs/{_org(w)}/commitments"),
    ),
    "POST /api/v1/billing/orgs/{org_ref}/commitments": (
        provider(ProviderPermission.PRICES_WRITE),
        lambda w, n: Call(
            f"/api/v1/billing/orgs/{_org(w)}/commitments",
            {
                "region": NODE_REGION,
                "gpu_model": "h100",
                "gpus": "8",
                "hourly_price": "3.10",
                "starts_at": "2026-01-01T00:00:00Z",
                "ends_at": "2027-01-01T00:00:00Z",
            },
        ),
    ),
    "POST /api/v1/billing/orgs/{org_ref}/credits": (
        provider(ProviderPermission.PRICES_WRITE),
        lambda w, n: Call(
            f"/api/v1/billing/orgs/{_org(w)}/credits",
            {"currency": "CAD", "amount": "50", "reason": f"iso {n}"},
        ),
    ),
    "GET /api/v1/orgs/{org_id}/billing/credits": (
        tenant(Permission.BILLING_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/billing/credits"),
    ),
    "GET /api/v1/orgs/{org_id}/billing/profile": (
        tenant(Permission.BILLING_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/billing/profile"),
    ),
    "PUT /api/v1/orgs/{org_id}/billing/profile": (
        tenant(Permission.BILLING_WRITE),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/billing/profile",
            {
                "legal_name": "Victim Inc.",
                "country": "CA",
                "subdivision": "QC",
                "email": "ap@victim.test",
            },
        ),
    ),
    "POST /api/v1/billing/invoices/runs": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call("/api/v1/billing/invoices/runs", {"month": "2026-10"}),
    ),
    "GET /api/v1/billing/invoices/{invoice_id}": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call(f"/api/v1/billing/invoices/{w.final_invoice_id}"),
    ),
    "POST /api/v1/billing/invoices/{invoice_id}/finalize": (
        provider(ProviderPermission.BILLING_OPERATE, destructive=True),
        lambda w, n: Call(f"/api/v1/billing/invoices/{w.draft_invoice_id}/finalize"),
    ),
    "POST /api/v1/billing/invoices/{invoice_id}/paid": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call(f"/api/v1/billing/invoices/{w.final_invoice_id}/paid"),
    ),
    "POST /api/v1/billing/invoices/{invoice_id}/void": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call(
            f"/api/v1/billing/invoices/{w.final_invoice_id}/void", {"reason": "isolation test"}
        ),
    ),
    "POST /api/v1/billing/invoices/{invoice_id}/credit-notes": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call(
            f"/api/v1/billing/invoices/{w.final_invoice_id}/credit-notes",
            {"amount": "1.00", "reason": "isolation test"},
        ),
    ),
    "GET /api/v1/billing/outbox": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call("/api/v1/billing/outbox", params={"state": "dead"}),
    ),
    "GET /api/v1/billing/outbox/counts": (
        provider(ProviderPermission.BILLING_OPERATE),
        lambda w, n: Call("/api/v1/billing/outbox/counts"),
    ),
    "POST /api/v1/billing/outbox/{message_id}/retry": (
        provider(ProviderPermission.BILLING_OPERATE, destructive=True),
        lambda w, n: Call(f"/api/v1/billing/outbox/{w.dead_delivery_id}/retry"),
    ),
    "GET /api/v1/orgs/{org_id}/invoices": (
        tenant(Permission.BILLING_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/invoices"),
    ),
    "GET /api/v1/orgs/{org_id}/invoices/{invoice_id}": (
        tenant(Permission.BILLING_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/invoices/{w.final_invoice_id}"),
    ),
    "GET /api/v1/orgs/{org_id}/invoices/{invoice_id}/document": (
        tenant(Permission.BILLING_READ),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/invoices/{w.final_invoice_id}/document",
            params={"format": "csv"},
        ),
    ),
    "GET /api/v1/orgs/{org_id}/budgets": (
        tenant(Permission.BILLING_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/budgets"),
    ),
    "PUT /api/v1/orgs/{org_id}/budgets": (
        tenant(Permission.BILLING_WRITE),
        lambda w, n: Call(
            f"/api/v1/orgs/{_org(w)}/budgets",
            {"currency": "CAD", "amount": "2000", "hard_stop": True},
        ),
    ),
    "GET /api/v1/orgs/{org_id}/costs/endpoints": (
        tenant(Permission.USAGE_READ),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/costs/endpoints"),
    ),
    "DELETE /api/v1/orgs/{org_id}/budgets/{budget_id}": (
        tenant(Permission.BILLING_WRITE, destructive=True),
        lambda w, n: Call(f"/api/v1/orgs/{_org(w)}/budgets/{w.budget_id}"),
    ),
}

# Victims first, outsiders last: by the time an outsider calls, the victim has used the API
# (so e.g. /metrics would show it if it leaked anything).
CALLER_ORDER = (
    "victim-owner",
    "victim-admin",
    "victim-member",
    "victim-billing",
    "victim-auditor",
    "victim-limited-key",
    "operator-admin",
    "operator-ca",
    "operator-se",
    "attacker-admin",
    "attacker-key",
    "anonymous",
)
CSRF_PROBE = "session-without-csrf"


def expected_outcome(rule: Rule, caller: Caller) -> Outcome:
    """What the access model says ``caller`` gets from an operation governed by ``rule``."""
    if rule.access in ("public", "node-agent"):
        return rule.answer
    if caller.kind == "anonymous":
        return Outcome.UNAUTHENTICATED
    if rule.access == "authenticated":
        if caller.kind == "api_key" and rule.api_keys is not None:
            return rule.api_keys
        if caller.victim_role is None and rule.outsiders is not None:
            return rule.outsiders
        return Outcome.OK
    if rule.access == "tenant":
        assert rule.permission is not None
        if caller.victim_role is None:
            return Outcome.HIDDEN  # another tenant must not learn the resource exists
        granted = tenant_allows(caller.victim_role, rule.permission)
        if caller.scopes is not None:
            granted = granted and rule.permission in caller.scopes
        return Outcome.OK if granted else Outcome.FORBIDDEN
    assert rule.access == "provider"
    assert rule.provider_permission is not None
    if not provider_allows(caller.provider_role, rule.provider_permission):
        return Outcome.FORBIDDEN
    if (
        rule.jurisdiction is not None
        and caller.provider_role is not ProviderRole.OPERATOR_ADMIN
        and caller.home_country != rule.jurisdiction
    ):
        return Outcome.FORBIDDEN
    if (
        rule.owner is not None
        and caller.provider_role is not ProviderRole.OPERATOR_ADMIN
        and caller.name != rule.owner
    ):
        return Outcome.HIDDEN
    return Outcome.OK


def _callers(method: str, rule: Rule, world: World) -> list[Caller]:
    """The callers of one operation; unsafe non-public ones first get a CSRF-less session."""
    callers = [world.callers[name] for name in CALLER_ORDER]
    if method in UNSAFE and rule.access not in ("public", "node-agent"):
        strongest = world.callers["operator-admin" if rule.access == "provider" else "victim-owner"]
        callers.insert(
            0,
            Caller(CSRF_PROBE, strongest.kind, strongest.headers, csrf={}),
        )
    return callers


async def _send(
    client: AsyncTestClient[Litestar], method: str, call: Call, caller: Caller
) -> httpx.Response:
    client.cookies.clear()  # each call carries exactly its caller's credential
    return await client.request(
        method,
        call.path,
        json=call.json,
        params=call.params,
        headers={**caller.headers, **caller.csrf},
    )


def _judge(rule: Rule, caller: Caller, response: httpx.Response) -> str:
    """An empty string when the response is what the model says, else why not."""
    status = response.status_code
    if caller.name == CSRF_PROBE:
        if status != 403 or "CSRF" not in response.text:
            return f"{caller.name}: expected 403 for the missing CSRF token, got {status}"
        return ""
    expected = expected_outcome(rule, caller)
    good = 200 <= status < 300 if expected is Outcome.OK else status == int(expected.value)
    if not good:
        return f"{caller.name}: expected {expected.value}, got {status}: {response.text[:300]}"
    if status >= 400 and not response.headers.get("content-type", "").startswith(
        "application/problem+json"
    ):
        return f"{caller.name}: a {status} that is not problem+json"
    return ""


def _leaks(response: httpx.Response, call: Call, markers: set[str]) -> list[str]:
    """Victim ids, slugs or emails in a response, beyond the request path echoed back."""
    text = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("instance") == call.path:
        text = json.dumps({k: v for k, v in body.items() if k != "instance"})
    text += json.dumps(
        {k: v for k, v in response.headers.items() if k.lower() not in {"content-length"}}
    )
    return sorted(m for m in markers if m in text)


async def _victim_activity(client: AsyncTestClient[Litestar], world: World) -> None:
    """The victim uses the API before anyone else calls, so its traces exist to leak."""
    owner = world.callers["victim-owner"]
    for path in (
        f"/api/v1/orgs/{world.victim.org_id}",
        f"/api/v1/projects/{world.victim.project_id}",
        f"/api/v1/api-keys/{world.victim_key_id}",
    ):
        response = await _send(client, "GET", Call(path), owner)
        assert response.status_code == 200, response.text


OPERATIONS = sorted(EXPECTATIONS)


class TestRouteIsolation:
    @pytest.mark.parametrize("operation", OPERATIONS, ids=OPERATIONS)
    async def test_operation_answers_each_caller_as_the_access_model_says(
        self,
        operation: str,
        client: AsyncTestClient[Litestar],
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> None:
        rule, build = EXPECTATIONS[operation]
        method = operation.split(" ", 1)[0]
        await build_catalog(db, clock)
        store = settings.model_store_root
        world = await build_world(db, clock, store, settings)
        await db.commit()
        await _victim_activity(client, world)
        markers = set(world.victim_markers)
        problems: list[str] = []
        names = [caller.name for caller in _callers(method, rule, world)]
        for index, name in enumerate(names):
            if rule.destructive and index:
                world = await build_world(db, clock, store, settings)
                await db.commit()
                markers |= world.victim_markers
            caller = {c.name: c for c in _callers(method, rule, world)}[name]
            call = build(world, unique())
            response = await _send(client, method, call, caller)
            if problem := _judge(rule, caller, response):
                problems.append(problem)
            if caller.outsider and (leaked := _leaks(response, call, markers)):
                problems.append(f"{caller.name}: response reveals the victim's {leaked}")
        assert not problems, f"{operation}:\n  " + "\n  ".join(problems)


class TestExpectationsCoverTheApi:
    def test_every_operation_in_the_openapi_document_has_an_expectation(
        self, app: Litestar
    ) -> None:
        spec = app.openapi_schema.to_schema()
        in_spec = {
            f"{method.upper()} {path}"
            for path, item in spec["paths"].items()
            for method in item
            if method in HTTP_METHODS
        }
        assert sorted(in_spec - set(EXPECTATIONS)) == [], "operations without an expectation"
        assert sorted(set(EXPECTATIONS) - in_spec) == [], "expectations of removed operations"

    def test_every_route_declares_the_access_the_table_documents(self, app: Litestar) -> None:
        declared: dict[str, str] = {}
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for handler in route.route_handlers:
                access = handler.opt.get(ACCESS_KEY)
                for method in handler.http_methods:
                    if isinstance(access, Access):
                        declared[f"{method} {route.path_format}"] = access.label
        wrong = {
            operation: (rule.label, declared.get(operation))
            for operation, (rule, _) in EXPECTATIONS.items()
            if declared.get(operation) != rule.label
        }
        assert wrong == {}, "operation: (documented, declared)"


def _documented_matrix(section: str) -> dict[str, dict[str, bool]]:
    """The permission table under ``## section`` of docs/security.md: permission -> role -> yes."""
    body = SECURITY_DOC.read_text(encoding="utf-8").split(f"\n## {section}\n", 1)[1]
    lines = [line for line in body.split("\n## ", 1)[0].splitlines() if line.startswith("| ")]
    roles = [cell.strip() for cell in lines[0].strip("|").split("|")[1:]]
    matrix = {}
    for line in lines[1:]:
        permission, *cells = (cell.strip() for cell in line.strip("|").split("|"))
        matrix[permission.strip("`")] = {
            role: cell == "yes" for role, cell in zip(roles, cells, strict=True)
        }
    return matrix


class TestAccessModelDocument:
    def test_documented_tenant_matrix_is_the_one_in_roles(self) -> None:
        assert _documented_matrix("Tenant roles") == {
            p.value: {r.value: tenant_allows(r, p) for r in TenantRole} for p in Permission
        }

    def test_documented_provider_matrix_is_the_one_in_roles(self) -> None:
        assert _documented_matrix("Provider roles") == {
            p.value: {r.value: provider_allows(r, p) for r in ProviderRole}
            for p in ProviderPermission
        }
