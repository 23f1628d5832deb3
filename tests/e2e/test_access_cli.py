"""``cpctl access`` and the SDK's access resource against a real uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sdk import Client, PermissionDeniedError
from control_plane.settings import Settings
from tests.e2e.server import serve_app
from tests.fixtures.factories import PASSWORD, Tenant, make_api_key, make_org, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    with serve_app(settings, clock=clock) as url:
        yield url


@pytest.fixture
async def world(db: AsyncSession) -> tuple[Tenant, str, str, str]:
    """An organization, an admin key of it, and two provider staff (emails)."""
    org = await make_org(db, "acme-access")
    secret = await make_api_key(db, org, TenantRole.ADMIN)
    ops = await make_user(
        db, "ops@provider.test", provider_role=ProviderRole.OPERATOR, home_country="CA"
    )
    boss = await make_user(db, "boss@provider.test", provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return org, secret, ops.email, boss.email


def run(home: Path, *args: str, input: str | None = None) -> Result:
    """``cpctl`` in-process with ``home``'s private profiles file and no inherited CP_ vars."""
    env = {"CPCTL_CONFIG": str(home / "profiles.toml"), "CPCTL_PROFILE": None}
    env |= {"CP_URL": None, "CP_API_KEY": None}
    return CliRunner(env=env).invoke(cli, list(args), input=input)


class TestAccessCli:
    def test_operator_requests_tenant_approves_operator_reads_auditor_reports(
        self, base_url: str, world: tuple[Tenant, str, str, str], tmp_path: Path
    ) -> None:
        org, secret, ops_email, _ = world
        ops_home, tenant_home = tmp_path / "ops", tmp_path / "tenant"
        signed = run(
            ops_home,
            "login",
            "--email",
            ops_email,
            "--password-stdin",
            "--url",
            base_url,
            input=PASSWORD + "\n",
        )
        assert signed.exit_code == 0, signed.output
        added = run(
            tenant_home, "profile", "add", "t", "--url", base_url, "--api-key", secret, "--use"
        )
        assert added.exit_code == 0, added.output

        asked = run(
            ops_home,
            "-o",
            "json",
            "access",
            "request",
            "--org",
            org.slug,
            "--reason",
            "customer_initiated_support",
            "--justification",
            "SUP-1: failing jobs",
            "--duration",
            "30",
        )
        assert asked.exit_code == 0, asked.output
        request_id = json.loads(asked.output)["id"]

        listed = run(tenant_home, "access", "list", "--state", "pending")
        assert request_id in listed.output
        approved = run(tenant_home, "access", "approve", request_id)
        assert approved.exit_code == 0, approved.output
        assert "approved" in approved.output

        support = run(ops_home, "access", "support-data", org.org_id, "--purpose", "cli check")
        assert support.exit_code == 0, support.output
        assert "default" in support.output

        shown = run(tenant_home, "access", "show", request_id)
        assert "cli check" in shown.output
        csv_out = tmp_path / "report.csv"
        report = run(tenant_home, "access", "report", "--format", "csv", "--out", str(csv_out))
        assert report.exit_code == 0, report.output
        assert "cli check" in csv_out.read_text()
        mine = run(ops_home, "access", "list", "--mine")
        assert request_id in mine.output

    def test_cli_denies_revokes_and_reviews_break_glass(
        self, base_url: str, world: tuple[Tenant, str, str, str], tmp_path: Path
    ) -> None:
        org, secret, ops_email, boss_email = world
        with Client(base_url) as ops, Client(base_url) as boss:
            ops.login(ops_email, PASSWORD)
            boss.login(boss_email, PASSWORD)
            pending = ops.access.request(
                org.org_id, "tenancy", "incident_response", "x", 60, "ten_1"
            )
            glass = boss.access.break_glass(
                org.org_id, "support_data", "incident_response", "fire", 30
            )
            with pytest.raises(PermissionDeniedError):
                ops.access.break_glass(org.org_id, "support_data", "incident_response", "no", 30)
        home = tmp_path / "tenant"
        run(home, "profile", "add", "t", "--url", base_url, "--api-key", secret, "--use")

        denied = run(home, "access", "deny", pending.id, "--reason", "not needed")
        revoked = run(home, "access", "revoke", glass.id)
        reviewed = run(
            home, "access", "review", glass.id, "--verdict", "disputed", "--comment", "why"
        )
        refused = run(home, "access", "approve", pending.id)

        assert "denied" in denied.output
        assert "revoked" in revoked.output
        assert "disputed" in reviewed.output
        assert refused.exit_code == 1
        assert "409" in refused.output
        with Client(base_url, api_key=secret) as tenant:
            notices = tenant.access.org(org.org_id).notifications(unacknowledged=True).to_list()
        assert notices == []  # the review acknowledged the break-glass notice
