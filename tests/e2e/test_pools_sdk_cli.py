"""Pools through ``cpctl`` (an operator sets one up) and the SDK (a tenant reads its windows
and places a tenancy whose lease ends with the window), against a served app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sdk import Client, ConflictError
from control_plane.settings import Settings
from tests.e2e.server import serve_app
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import PASSWORD, Tenant, make_api_key, make_org, make_user

pytestmark = pytest.mark.e2e


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock) -> tuple[Tenant, str, str, list[str]]:
    """An organization with a member key, an operator-admin, two 8x H100 nodes."""
    org = await make_org(db, "render-farm")
    secret = await make_api_key(db, org, TenantRole.MEMBER)
    operator = await make_user(db, "ops@provider.test", provider_role=ProviderRole.OPERATOR_ADMIN)
    nodes = await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-pool")
    await db.commit()
    return org, secret, operator.email, nodes


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    with serve_app(settings, clock=clock) as url:
        yield url


def cpctl(home: Path, *args: str, input: str | None = None) -> Result:
    env = {"CPCTL_CONFIG": str(home / "profiles.toml"), "CPCTL_PROFILE": None}
    env |= {"CP_URL": None, "CP_API_KEY": None}
    return CliRunner(env=env).invoke(cli, list(args), input=input)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def _hhmm(at: datetime) -> str:
    return f"{at.hour:02d}:{at.minute:02d}"


class TestPoolsCliAndSdk:
    def test_operator_lends_a_pool_and_the_tenant_places_in_its_window(
        self,
        base_url: str,
        world: tuple[Tenant, str, str, list[str]],
        clock: OffsetClock,
        tmp_path: Path,
    ) -> None:
        org, secret, ops_email, nodes = world
        now = clock.now().astimezone(UTC).replace(second=0, microsecond=0)
        start, end = now - timedelta(hours=1), now + timedelta(hours=2)
        assert cpctl(tmp_path, "profile", "add", "ops", "--url", base_url).exit_code == 0
        login = cpctl(tmp_path, "login", "--email", ops_email, "--password-stdin", input=PASSWORD)
        assert login.exit_code == 0, login.stderr

        pool = ok_json(cpctl(tmp_path, "-o", "json", "pools", "create", "ca-qc-1", "night",
                             "--timezone", "UTC", "--drain-minutes", "15"))  # fmt: skip
        ok_json(cpctl(tmp_path, "-o", "json", "pools", "set-nodes", "ca-qc-1", "night", *nodes))
        window = ok_json(cpctl(tmp_path, "-o", "json", "pools", "add-window", "ca-qc-1", "night",
                               "--org", org.slug, "--days", "daily", "--start", _hhmm(start),
                               "--end", _hhmm(end)))  # fmt: skip
        assert window["org_id"] == org.org_id
        overlap = cpctl(tmp_path, "pools", "add-window", "ca-qc-1", "night", "--org", org.slug,
                        "--days", "mon", "--start", _hhmm(now), "--end", _hhmm(end))  # fmt: skip
        assert overlap.exit_code != 0
        assert "overlaps window" in overlap.stderr
        shown = cpctl(tmp_path, "pools", "show", "ca-qc-1", "night")
        assert "qc-pool-00, qc-pool-01" in shown.stdout
        schedule = ok_json(cpctl(tmp_path, "-o", "json", "pools", "schedule", "ca-qc-1",
                                 pool["id"], "--days", "2"))  # fmt: skip
        assert len(schedule) >= 2

        with Client(base_url, secret) as client:
            (mine,) = client.pools.mine()
            assert mine.name == "night"
            assert mine.openings[0].open_now
            tenancy = client.tenancies.create("render-1", "slurm", "ca-qc-1", gpu_model="h100",
                                              gpus_per_node=8)  # fmt: skip
            assert tenancy.ends_at == end

        deleted = cpctl(tmp_path, "pools", "delete", "ca-qc-1", "night", "--yes")
        assert deleted.exit_code == 0, deleted.stderr
        with Client(base_url, secret) as client:
            assert client.pools.mine() == []
            with pytest.raises(ConflictError):  # 16 GPUs, 8 held: no room for 16 more
                client.tenancies.create("render-2", "slurm", "ca-qc-1", gpu_model="h100",
                                        gpus_per_node=8, node_count=2)  # fmt: skip
