"""``cpctl policy`` and the SDK's ``client.residency`` against the app served by uvicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store as ledger
from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.sdk import Client, ConflictError
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from tests.e2e.server import serve_app
from tests.fixtures.factories import Tenant, make_api_key, make_org


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    """The app served for real; ``app`` (unused by the server) empties the tables after."""
    with serve_app(settings, clock=clock) as url:
        yield url


@pytest.fixture
async def org(db: AsyncSession, clock: OffsetClock) -> Tenant:
    """An organization with a ledger chain in Sweden."""
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


@pytest.fixture
async def owner_key(db: AsyncSession, org: Tenant) -> str:
    secret = await make_api_key(db, org, TenantRole.OWNER)
    await db.commit()
    return secret


class Cpctl:
    """``cpctl`` in-process, configured by environment only (no profile file)."""

    def __init__(self, url: str, key: str, config: Path) -> None:
        self.runner = CliRunner(
            env={
                "CPCTL_CONFIG": str(config),
                "CPCTL_PROFILE": None,
                "CP_URL": url,
                "CP_API_KEY": key,
            }
        )

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(cli, list(args))

    def json(self, *args: str) -> Any:
        result = self(*args, "--output", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def cpctl(base_url: str, owner_key: str, tmp_path: Path) -> Cpctl:
    return Cpctl(base_url, owner_key, tmp_path / "profiles.toml")


class TestCpctlPolicy:
    def test_templates_lists_the_three(self, cpctl: Cpctl) -> None:
        slugs = [t["slug"] for t in cpctl.json("policy", "templates")]
        assert sorted(slugs) == ["canada-sovereign", "eu-data-boundary", "unrestricted"]

    def test_set_is_refused_naming_stranded_resources_until_forced(
        self, cpctl: Cpctl, org: Tenant
    ) -> None:
        refused = cpctl("policy", "set", "--org", org.org_id, "--template", "canada-sovereign")
        assert refused.exit_code == 1
        assert "409" in refused.stderr
        assert f"audit_chain {org.org_id}/se-north-1 in se-north-1" in refused.stderr
        saved = cpctl.json(
            "policy", "set", "--org", org.org_id, "--template", "canada-sovereign", "--force"
        )
        assert saved["version"] == 1
        assert saved["forced"] is True
        shown = cpctl("policy", "show", "--org", org.org_id)
        assert shown.exit_code == 0, shown.output
        assert "version 1 (canada-sovereign)" in shown.stdout
        assert "Protected B" in shown.stdout

    def test_preview_and_evaluate_explain_without_storing(self, cpctl: Cpctl, org: Tenant) -> None:
        preview = cpctl("policy", "preview", "--org", org.org_id, "--template", "eu-data-boundary")
        assert preview.exit_code == 0, preview.output
        assert "would fall outside" in preview.stdout
        evaluated = cpctl("policy", "evaluate", "--org", org.org_id, "--region", "us-east-1")
        assert evaluated.exit_code == 0, evaluated.output
        assert evaluated.stdout.startswith("allowed (residency.unrestricted, policy v0)")
        assert cpctl.json("policy", "versions", "--org", org.org_id) == []

    def test_report_downloads_and_verifies_the_signature(
        self, cpctl: Cpctl, org: Tenant, tmp_path: Path
    ) -> None:
        out = tmp_path / "report.csv"
        result = cpctl(
            "policy", "report", "--org", org.org_id, "--format", "csv", "--out", str(out)
        )
        assert result.exit_code == 0, result.output
        assert "signature verified" in result.stdout
        assert out.read_text().startswith("kind,id,region_code,jurisdiction")
        assert (tmp_path / "report.csv.sig").read_text().strip()


class TestSdk:
    def test_set_preview_report_round_trip(
        self, base_url: str, owner_key: str, org: Tenant
    ) -> None:
        with Client(base_url, api_key=owner_key) as client:
            with pytest.raises(ConflictError) as refused:
                client.residency.set(org.org_id, template="canada-sovereign")
            assert refused.value.status == 409
            saved = client.residency.set(
                org.org_id, allowed_jurisdictions=["CA", "SE"], unrestricted=False
            )
            assert saved.version == 1
            assert saved.policy.allowed_jurisdictions == ["CA", "SE"]
            # Saving the same policy again stores nothing: a retried PUT is harmless.
            again = client.residency.set(org.org_id, allowed_jurisdictions=["SE", "CA"])
            assert again.version == 1
            assert [v.version for v in client.residency.versions(org.org_id)] == [1]
            report = client.residency.report(org.org_id, format="json")
            keys = {k.key_id: k.public_key for k in client.audit.keys().keys}
            assert report.verify(keys)
            tampered = type(report)(
                report.content + b" ", report.media_type, report.key_id, report.signature
            )
            assert not tampered.verify(keys)
