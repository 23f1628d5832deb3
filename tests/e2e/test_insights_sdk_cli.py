"""GPU telemetry to applied advice through ``cpctl`` and the SDK against a served app: an
operator issues a node agent credential, the agent's samples go through the real ingest API,
the server's own rollup loop folds them into hours, the analysis prices them from the
organization's book, and the customer reads, applies and audits the advice."""

from __future__ import annotations

import json
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sdk import Client
from control_plane.settings import Settings
from control_plane.telemetry.schemas import UtilizationReport
from tests.e2e.server import serve_app
from tests.fixtures.capacity import make_fleet, make_shape
from tests.fixtures.factories import PASSWORD, make_api_key, make_org, make_user

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0  # for the reconciler and the rollup loop
HOURS = 30  # of history before the analysis
BATCHES = "/api/v1/telemetry/batches"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app drives tenancies and rolls telemetry up by itself, quickly; sessions
    outlive the hours the test lets pass."""
    return settings.model_copy(update={"reconciler_enabled": True,
                                       "telemetry_rollup_seconds": 0.2,
                                       "session_ttl_seconds": 30 * 86400})  # fmt: skip


@dataclass(frozen=True)
class World:
    nodes: dict[str, str]
    org_id: str
    secret: str
    other_secret: str
    ops: str
    member: str


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock) -> World:
    """One H100 and one L40S node in Québec, a customer (member key), another organization
    and an operator-admin."""
    [h100] = await make_fleet(db, clock, nodes=1, gpus_per_node=4, prefix="e2e-h100")
    [l40s] = await make_fleet(db, clock, nodes=1, gpus_per_node=4, model="l40s",
                              prefix="e2e-l40s")  # fmt: skip
    await make_shape(db, clock, region="ca-qc-1", name="quad", model="h100", gpus_per_node=4,
                     price="16.00")  # fmt: skip
    customer = await make_org(db, "bouleau")
    secret = await make_api_key(db, customer, TenantRole.MEMBER)
    other = await make_org(db, "pruche")
    other_secret = await make_api_key(db, other, TenantRole.OWNER)
    ops = await make_user(db, "ops@provider.test", provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    member = customer.accounts[TenantRole.MEMBER].email
    return World({"h100": h100, "l40s": l40s}, customer.org_id, secret, other_secret, ops.email,
                 member)  # fmt: skip


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    with serve_app(settings, clock=clock) as url:
        yield url


def cpctl(home: Path, *args: str, input: str | None = None) -> Result:
    env = {"CPCTL_CONFIG": str(home / "profiles.toml"), "CPCTL_PROFILE": None}
    env |= {"CP_URL": None, "CP_API_KEY": None}
    return CliRunner(env=env).invoke(cli, list(args), input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    return result


def ok_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def profiles(home: Path, base_url: str, world: World) -> None:
    """``ops`` (signed in), ``acme`` (the customer's key, current) and ``other``."""
    ok(cpctl(home, "profile", "add", "ops", "--url", base_url))
    ok(cpctl(home, "--profile", "ops", "login", "--email", world.ops, "--password-stdin",
             input=PASSWORD))  # fmt: skip
    ok(cpctl(home, "profile", "add", "other", "--url", base_url, "--api-key",
             world.other_secret))  # fmt: skip
    ok(cpctl(home, "profile", "add", "acme", "--url", base_url, "--api-key", world.secret,
             "--use"))  # fmt: skip


def samples(gpu: dict[str, Any], end: datetime, util: int, mem_mib: int) -> list[Any]:
    """A sample every 10 minutes over the ``HOURS - 1`` hours before ``end``."""
    out, at = [], end - timedelta(hours=HOURS - 1)
    while at < end:
        out.append({
            "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "gpu_uuid": gpu["uuid"],
            "index": gpu["index"], "sm_util_pct": util, "mem_util_pct": util // 2,
            "mem_used_mib": mem_mib, "mem_total_mib": 81559, "power_w": 80.0 + 6.0 * util,
            "temp_c": 45, "sm_clock_mhz": 1400, "mem_clock_mhz": 1600,
            "processes": [{"pid": 100, "name": "python", "used_mib": mem_mib}],
        })  # fmt: skip
        at += timedelta(minutes=10)
    return out


def rolled_up(client: Client, tenancy_id: str) -> UtilizationReport:
    """Wait until the server's rollup loop has folded both GPUs' samples into hours."""
    deadline = datetime.now(UTC) + timedelta(seconds=TIMEOUT)
    while True:
        report = client.telemetry.utilization(tenancy=tenancy_id)
        if len(report.gpus) == 2 and all(len(g.points) >= HOURS - 2 for g in report.gpus):
            return report
        assert datetime.now(UTC) < deadline, f"not rolled up in time: {report}"
        time.sleep(0.2)


class TestTelemetryToAppliedAdvice:
    def test_agent_samples_become_advice_the_customer_applies_with_cpctl(
        self, base_url: str, world: World, clock: OffsetClock, tmp_path: Path
    ) -> None:
        profiles(tmp_path, base_url, world)
        cred_file = tmp_path / "agent" / "credential"
        cred_file.parent.mkdir()

        # The operator issues the node's agent credential into a private file.
        issued = ok_json(cpctl(tmp_path, "--profile", "ops", "-o", "json", "nodes",
                               "agent-credential", "issue", "e2e-h100-00", "--out",
                               str(cred_file)))  # fmt: skip
        assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
        assert issued["node_id"] == world.nodes["h100"]
        assert "credential" not in issued
        listed = ok(cpctl(tmp_path, "--profile", "ops", "nodes", "agent-credential", "list",
                          world.nodes["h100"]))  # fmt: skip
        assert issued["id"] in listed.stdout

        with Client(base_url, world.secret) as customer, Client(base_url) as operator:
            operator.login(world.ops, PASSWORD)
            book = {"effective_from": (clock.now() - timedelta(days=40)).isoformat(),
                    "timezone": "America/Toronto", "rates": [
                        {"usage_type": "gpu_seconds", "gpu_model": "h100",
                         "unit_price": "4.00"}]}  # fmt: skip
            ok(cpctl(tmp_path, "--profile", "ops", "billing", "publish-prices", "ca-qc-1",
                     str(_write(tmp_path / "book.json", book))))  # fmt: skip

            tenancy = customer.tenancies.create("train", "slurm", "ca-qc-1", gpu_model="h100",
                                                gpus_per_node=2)  # fmt: skip
            tenancy = customer.tenancies.wait(tenancy.id, "active", TIMEOUT)
            clock.advance(HOURS * 3600)

            # The node agent ships a busy and an idle GPU through the real ingest API.
            gpus = {g.index: g for g in operator.nodes.get(world.nodes["h100"]).gpus}
            busy, idle = (gpus[i] for i in tenancy.allocations[0].gpu_indices)
            body = {
                "batch_id": "e2e-1",
                "samples": [
                    *samples({"uuid": busy.uuid, "index": busy.index}, clock.now(), 70, 30_000),
                    *samples({"uuid": idle.uuid, "index": idle.index}, clock.now(), 0, 300),
                ],
            }
            headers = {"authorization": f"Bearer {cred_file.read_text().strip()}"}
            sent = httpx.post(f"{base_url}{BATCHES}", json=body, headers=headers, timeout=30)
            assert sent.status_code == 200, sent.text
            assert sent.json()["accepted"] == len(body["samples"])

            report = rolled_up(customer, tenancy.id)
            assert report.energy_kwh > 0
            table = ok(cpctl(tmp_path, "utilization", "--tenancy", tenancy.id))
            assert re.search(rf"^{busy.id} +h100 +{tenancy.id} +100% +\d+ +70\.0 +70\.0 ",
                             table.stdout, re.M), table.stdout  # fmt: skip
            assert re.search(rf"^{idle.id} .* 0\.0 +0\.0 +0\.3 ", table.stdout, re.M)

            result = customer.insights.analyze()
            assert result.findings >= 1
            [advice] = customer.insights.list()
            assert advice.rule == "underused_multi_gpu"
            assert advice.target_id == tenancy.id
            assert advice.action.kind == "resize"
            assert advice.monthly_savings == Decimal("2920.00")
            assert customer.insights.get(advice.id) == advice

            listing = ok(cpctl(tmp_path, "insights", "list"))
            assert re.search(rf"^{advice.id} +train +.* 2920\.00 CAD ", listing.stdout, re.M)
            shown = ok(cpctl(tmp_path, "insights", "show", advice.id))
            assert re.search(r"^action +resize: ", shown.stdout, re.M)

            applied = ok(cpctl(tmp_path, "-o", "json", "insights", "apply", advice.id, "--yes"))
            assert json.loads(applied.stdout)["state"] == "applied"
            assert "gpus per node: 2 -> 1" in applied.stderr
            assert "saves about 2920.00 CAD a month" in applied.stderr
            assert "gpu model" not in applied.stderr  # unchanged settings are not listed
            resized = customer.tenancies.wait(tenancy.id, "active", TIMEOUT)
            assert resized.gpus_per_node == 1
            assert customer.insights.list() == []
            assert [r.id for r in customer.insights.list(["applied"])] == [advice.id]

            # A project key reads its project's waste (here every tenancy is in it), a member
            # signed in the organization's: the same money.
            keyed = ok(cpctl(tmp_path, "insights", "waste", "--days", "7"))
            ok(cpctl(tmp_path, "profile", "add", "me", "--url", base_url))
            ok(cpctl(tmp_path, "--profile", "me", "login", "--email", world.member,
                     "--password-stdin", input=PASSWORD))  # fmt: skip
            waste = ok(cpctl(tmp_path, "--profile", "me", "insights", "waste", "--days", "7"))
            assert re.search(r"^CAD +\d+\.\d\d +", waste.stdout, re.M), waste.stdout
            assert "IDLE GPU-HOURS" in waste.stdout
            assert "kg CO2e a month" in waste.stdout
            with Client(base_url) as member:
                member.login(world.member, PASSWORD)
                [cad] = member.insights.waste(days=7).currencies
            assert cad.wasted > 0
            assert money_in(waste.stdout) == cad.wasted
            assert money_in(keyed.stdout) == cad.wasted

            fleet = ok_json(cpctl(tmp_path, "--profile", "ops", "-o", "json", "fleet",
                                  "utilization"))  # fmt: skip
            assert [r["region"] for r in fleet["regions"]] == ["ca-qc-1"]
            stranded = ok(cpctl(tmp_path, "--profile", "ops", "fleet", "stranded"))
            # 3 free H100s on one node: a 4-GPU shape cannot use them.
            assert re.search(r"^ca-qc-1 +7 +quad +h100 +4 GPU +0 +0 +3$", stranded.stdout,
                             re.M), stranded.stdout  # fmt: skip

            # Revoked, the agent's next batch is refused (once the 5 s cache has expired).
            ok(cpctl(tmp_path, "--profile", "ops", "nodes", "agent-credential", "revoke",
                     "e2e-h100-00", issued["id"]))  # fmt: skip
            clock.advance(6)
            refused = httpx.post(f"{base_url}{BATCHES}", json={**body, "batch_id": "e2e-2"},
                                 headers=headers, timeout=30)  # fmt: skip
            assert refused.status_code == 401

        # Refusals print the problem and exit non-zero.
        again = cpctl(tmp_path, "insights", "apply", advice.id, "--yes")
        assert again.exit_code == 1
        assert "error: 409" in again.stderr
        assert "Only open advice can be applied; this one is applied." in again.stderr
        unknown = cpctl(tmp_path, "insights", "show", "rec_doesnotexist")
        assert unknown.exit_code == 1
        assert "error: 404" in unknown.stderr
        elsewhere = cpctl(tmp_path, "--profile", "other", "insights", "show", advice.id)
        assert elsewhere.exit_code == 1
        assert "error: 404" in elsewhere.stderr
        foreign = cpctl(tmp_path, "--profile", "other", "insights", "waste", "--org",
                        world.org_id)  # fmt: skip
        assert foreign.exit_code == 1
        assert re.match(r"error: 40[34] ", foreign.stderr), foreign.stderr


def money_in(table: str) -> Decimal:
    match = re.search(r"^CAD +(\d+\.\d\d) ", table, re.M)
    assert match is not None, table
    return Decimal(match.group(1))


def _write(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value))
    return path


class TestRightSizingBySdkAndCpctl:
    def test_resize_to_a_share_of_another_model_and_schedule_idle_release(
        self, base_url: str, world: World, tmp_path: Path
    ) -> None:
        profiles(tmp_path, base_url, world)
        with Client(base_url, world.secret) as customer:
            created = customer.tenancies.create("infer", "vm", "ca-qc-1", gpu_model="h100",
                                                gpus_per_node=1)  # fmt: skip
            customer.tenancies.wait(created.id, "active", TIMEOUT)

            customer.tenancies.resize(created.id, 1, gpu_model="l40s", gpu_milli=500)
            moved = customer.tenancies.wait(created.id, "active", TIMEOUT)
            scheduled = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "schedule",
                                      created.id, "--idle-release-minutes", "60"))  # fmt: skip
            off = customer.tenancies.schedule(created.id, None)

        assert moved.gpu_model == "l40s"
        assert [a.gpu_milli for a in moved.allocations] == [500]
        assert moved.allocations[0].hostname == "e2e-l40s-00"
        assert scheduled["idle_release_minutes"] == 60
        assert off.idle_release_minutes is None
        assert off.allocations == moved.allocations  # the answer shows the GPUs it holds
