"""Reaching a running tenancy through the SDK and ``cpctl`` against a real uvicorn server
(reconciler in-process, the embedded ``sim`` driver): VM power and console, the Kubernetes
kubeconfig shown once (then rotated), a Jupyter workspace, an operator's console only
under an approved grant."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.http.models import IdempotencyRecord
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sdk import Client, ConflictError, PermissionDeniedError, ValidationError
from control_plane.sdk.models import PowerAction, TenancyRead, Workspace
from control_plane.settings import Settings
from tests.e2e.server import serve_app
from tests.fixtures.capacity import make_fleet, make_quota
from tests.fixtures.factories import PASSWORD, Tenant, make_api_key, make_org, make_user

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0  # upper bound for the reconciler to bring a simulated tenancy up


@dataclass(frozen=True)
class World:
    org: Tenant
    member_key: str
    admin_key: str
    operator_email: str


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app drives tenancies itself."""
    return settings.model_copy(update={"reconciler_enabled": True})


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock) -> World:
    """An organization with a member's and an admin's API key, two 8x H100 nodes in Québec,
    and a provider operator who lives in Canada."""
    org = await make_org(db, "acme-machines")
    member = await make_api_key(db, org, TenantRole.MEMBER)
    admin = await make_api_key(db, org, TenantRole.ADMIN)
    ops = await make_user(
        db, "ops@provider.test", provider_role=ProviderRole.OPERATOR, home_country="CA"
    )
    await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-h100")
    await make_quota(db, clock, max_gpus=16)
    await db.commit()
    return World(org, member, admin, ops.email)


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    """The app served for real; ``app`` (not started) empties the tables afterwards."""
    with serve_app(settings, clock=clock) as url:
        yield url


def up(client: Client, name: str, kind: str, **extra: Any) -> TenancyRead:
    """A one-GPU tenancy of ``kind`` in Québec, waited for until active."""
    made = client.tenancies.create(name, kind, "ca-qc-1", gpu_model="h100", gpus_per_node=1,
                                   **extra)  # fmt: skip
    return client.tenancies.wait(made.id, "active", TIMEOUT)


def token_of(kubeconfig: str) -> str:
    token: str = yaml.safe_load(kubeconfig)["users"][0]["user"]["token"]
    return token


def cpctl(home: Path, *args: str, input: str | None = None) -> Result:
    """``cpctl`` in-process with ``home``'s private profiles file and no inherited CP_ vars."""
    env = {"CPCTL_CONFIG": str(home / "profiles.toml"), "CPCTL_PROFILE": None}
    env |= {"CP_URL": None, "CP_API_KEY": None}
    return CliRunner(env=env).invoke(cli, list(args), input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output + result.stderr
    return result


def ok_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


class TestSdk:
    def test_vm_power_actions_and_console(self, base_url: str, world: World) -> None:
        with Client(base_url, world.member_key) as client:
            vm = up(client, "vm-sdk", "vm")
            stopped = client.tenancies.stop(vm.id)
            started = client.tenancies.start(vm.id)
            rebooted = client.tenancies.reboot(vm.id)
            again = client.tenancies.power(vm.id, "stop")
            console = client.tenancies.console(vm.id)
            events = [e.detail for e in client.tenancies.events(vm.id)]

        assert (stopped.action, started.action, rebooted.action) == (
            PowerAction.STOP, PowerAction.START, PowerAction.REBOOT,
        )  # fmt: skip
        assert again.tenancy_id == vm.id
        assert any("off (stop)" in detail for detail in events)
        assert console.protocol == "vnc"
        assert "token=" in console.url
        assert vm.activated_at is not None
        assert console.expires_at > vm.activated_at

    def test_power_on_a_slurm_tenancy_is_a_conflict_naming_what_it_lacks(
        self, base_url: str, world: World
    ) -> None:
        with Client(base_url, world.member_key) as client:
            slurm = up(client, "slurm-sdk", "slurm")
            with pytest.raises(ConflictError) as refused:
                client.tenancies.reboot(slurm.id)
            with pytest.raises(ValueError, match="explode"):
                client.tenancies.power(slurm.id, "explode")  # type: ignore[arg-type]
        assert "does not offer power actions" in refused.value.detail

    async def test_kubeconfig_is_shown_once_then_rotated_and_never_kept_for_replay(
        self, base_url: str, world: World, db: AsyncSession
    ) -> None:
        with Client(base_url, world.member_key) as client:
            ns = up(client, "ns-sdk", "kubernetes", workspace=Workspace(idle_minutes=30))
            before = client.tenancies.credential(ns.id)
            first = client.tenancies.reveal_credential(ns.id)
            with pytest.raises(ConflictError) as again:
                client.tenancies.reveal_credential(ns.id)
            after = client.tenancies.credential(ns.id)
            rotated = client.tenancies.rotate_credential(ns.id)
            second = client.tenancies.reveal_credential(ns.id)

        assert ns.workspace == Workspace(preset="jupyter", idle_minutes=30)
        assert (before.kind, before.shown, before.rotations) == ("kubeconfig", False, 0)
        assert yaml.safe_load(first)["contexts"][0]["context"]["namespace"] == ns.id.replace(
            "_", "-"
        )
        assert "already shown" in again.value.detail
        assert "rotate" in again.value.detail
        assert after.shown
        assert after.shown_at is not None
        assert (rotated.shown, rotated.rotations) == (False, 1)
        assert token_of(second) != token_of(first)
        # The SDK sends reveals without an Idempotency-Key (the answer is never kept to replay).
        await db.rollback()
        paths = (await db.execute(select(IdempotencyRecord.path))).scalars().all()
        assert not [p for p in paths if p.endswith("/credential/reveal")]
        assert any(p.endswith("/credential/rotate") for p in paths)

    def test_a_workspace_on_a_vm_is_refused_with_the_field(
        self, base_url: str, world: World
    ) -> None:
        with (
            Client(base_url, world.member_key) as client,
            pytest.raises(ValidationError) as refused,
        ):
            client.tenancies.create("vm-ws", "vm", "ca-qc-1", gpu_model="h100",
                                    gpus_per_node=1, workspace=Workspace())  # fmt: skip
        assert refused.value.errors[0].field == "body.workspace"

    def test_an_operator_console_needs_an_approved_grant(self, base_url: str, world: World) -> None:
        with Client(base_url, world.member_key) as tenant:
            vm = up(tenant, "vm-ops", "vm")
        with Client(base_url) as ops, Client(base_url, world.admin_key) as admin:
            ops.login(world.operator_email, PASSWORD)
            with pytest.raises(PermissionDeniedError):
                ops.access.console(world.org.org_id, vm.id, "ticket 88: VM does not boot")
            asked = ops.access.request(world.org.org_id, "tenancy", "customer_initiated_support",
                                       "Ticket 88: VM does not boot", 30, vm.id)  # fmt: skip
            admin.access.org(world.org.org_id).approve(asked.id)
            console = ops.access.console(world.org.org_id, vm.id, "ticket 88: VM does not boot")
            uses = [u.purpose for u in ops.access.get(asked.id).uses]
        assert console.protocol == "vnc"
        assert uses == ["console: ticket 88: VM does not boot"]


class TestCpctl:
    def test_power_and_console_of_a_vm(self, base_url: str, world: World, tmp_path: Path) -> None:
        with Client(base_url, world.member_key) as client:
            vm = up(client, "vm-cli", "vm")
        ok(cpctl(tmp_path, "profile", "add", "acme", "--url", base_url, "--api-key",
                 world.member_key, "--use"))  # fmt: skip

        rebooted = ok(cpctl(tmp_path, "tenancies", "power", vm.id, "reboot"))
        stopped = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "power", vm.id, "stop"))
        console = ok(cpctl(tmp_path, "tenancies", "console", vm.id))
        console_json = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "console", vm.id))
        bad = cpctl(tmp_path, "tenancies", "power", vm.id, "explode")

        assert re.search(r"^action +reboot$", rebooted.stdout, re.M)
        assert (stopped["tenancy_id"], stopped["action"]) == (vm.id, "stop")
        assert re.search(r"^url +\S+token=", console.stdout, re.M)
        assert re.search(r"^protocol +vnc$", console.stdout, re.M)
        assert console_json["protocol"] == "vnc"
        assert bad.exit_code == 2
        assert "start" in bad.stderr

    def test_kubeconfig_shown_once_written_0600_refused_twice_then_rotated(
        self, base_url: str, world: World, tmp_path: Path
    ) -> None:
        ok(cpctl(tmp_path, "profile", "add", "acme", "--url", base_url, "--api-key",
                 world.member_key, "--use"))  # fmt: skip
        created = ok_json(cpctl(
            tmp_path, "-o", "json", "tenancies", "create", "ns-cli", "--kind", "kubernetes",
            "--region", "ca-qc-1", "--gpu-model", "h100", "--gpus-per-node", "1",
            "--workspace", "jupyter", "--idle-minutes", "45", "--wait", "--timeout", str(TIMEOUT),
        ))  # fmt: skip
        ns = created["id"]
        assert created["workspace"] == {"preset": "jupyter", "idle_minutes": 45}
        shown = ok(cpctl(tmp_path, "tenancies", "get", ns))
        assert re.search(r"^workspace +jupyter, stops after 45 idle minutes$", shown.stdout, re.M)

        taken = tmp_path / "taken.yaml"
        taken.write_text("mine\n")
        taken.chmod(0o644)
        clash = cpctl(tmp_path, "tenancies", "kubeconfig", ns, "--out", str(taken))
        assert clash.exit_code == 2
        assert "exists" in clash.stderr
        assert taken.read_text() == "mine\n"
        status = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "kubeconfig", ns, "--status"))
        assert status["shown"] is False  # refusing the file revealed nothing

        printed = ok(cpctl(tmp_path, "tenancies", "kubeconfig", ns))
        first = token_of(printed.stdout)
        assert "will NOT be shown again" in printed.stderr
        assert first not in printed.stderr

        second = cpctl(tmp_path, "tenancies", "kubeconfig", ns)
        assert second.exit_code == 1
        assert second.stdout == ""
        assert "409" in second.stderr
        assert "already shown" in second.stderr
        assert f"hint: get a new one with: cpctl tenancies kubeconfig {ns} --rotate" in (
            second.stderr
        )

        out = tmp_path / "kube" / "config"
        out.parent.mkdir()
        rotated = ok(cpctl(tmp_path, "tenancies", "kubeconfig", ns, "--rotate", "--out", str(out)))
        assert rotated.stdout == ""
        assert f"written to {out} (mode 0600)" in rotated.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert token_of(out.read_text()) != first

        replaced = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "kubeconfig", ns,
                                 "--rotate", "--out", str(taken), "--force"))  # fmt: skip
        assert (replaced["shown"], replaced["rotations"]) == (True, 2)
        assert stat.S_IMODE(taken.stat().st_mode) == 0o600
        assert token_of(taken.read_text()) not in (first, token_of(out.read_text()))

    def test_kubeconfig_option_mistakes_are_refused_before_any_call(
        self, base_url: str, world: World, tmp_path: Path
    ) -> None:
        ok(cpctl(tmp_path, "profile", "add", "acme", "--url", base_url, "--api-key",
                 world.member_key, "--use"))  # fmt: skip
        force_alone = cpctl(tmp_path, "tenancies", "kubeconfig", "ten_x", "--force")
        status_and_out = cpctl(tmp_path, "tenancies", "kubeconfig", "ten_x", "--status",
                               "--out", str(tmp_path / "k"))  # fmt: skip
        no_dir = cpctl(tmp_path, "tenancies", "kubeconfig", "ten_x", "--out",
                       str(tmp_path / "missing" / "k"))  # fmt: skip
        idle_alone = cpctl(tmp_path, "tenancies", "create", "x", "--kind", "kubernetes",
                           "--shape", "small", "--idle-minutes", "30")  # fmt: skip
        assert [r.exit_code for r in (force_alone, status_and_out, no_dir, idle_alone)] == [2] * 4
        assert "--out" in force_alone.stderr
        assert "not a directory" in no_dir.stderr
        assert "--workspace" in idle_alone.stderr

    def test_operator_console_refused_without_a_grant_then_opened_under_one(
        self, base_url: str, world: World, tmp_path: Path
    ) -> None:
        with Client(base_url, world.member_key) as tenant:
            vm = up(tenant, "vm-ops-cli", "vm")
        ok(cpctl(tmp_path, "login", "--email", world.operator_email, "--password-stdin",
                 "--url", base_url, input=PASSWORD + "\n"))  # fmt: skip
        purpose = "ticket 91: console is black"

        refused = cpctl(tmp_path, "access", "console", world.org.org_id, vm.id,
                        "--purpose", purpose)  # fmt: skip
        with Client(base_url) as ops, Client(base_url, world.admin_key) as admin:
            ops.login(world.operator_email, PASSWORD)
            asked = ops.access.request(world.org.org_id, "tenancy", "customer_initiated_support",
                                       "Ticket 91: console is black", 30, vm.id)  # fmt: skip
            admin.access.org(world.org.org_id).approve(asked.id)
        opened = ok_json(cpctl(tmp_path, "-o", "json", "access", "console", world.org.org_id,
                               vm.id, "--purpose", purpose))  # fmt: skip

        assert refused.exit_code == 1
        assert "403" in refused.stderr
        assert opened["protocol"] == "vnc"
