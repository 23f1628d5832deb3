"""Tenancies through the Python SDK and ``cpctl`` against a real uvicorn server that runs
the reconciler in-process (as ``make run`` does): create, wait, resize, release."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.sdk import (
    Client,
    ConflictError,
    NotFoundError,
    TenancyFailedError,
    ValidationError,
    WaitTimeoutError,
)
from control_plane.settings import Settings
from control_plane.tenancies.schemas import TenancyEventRead, TenancyRead
from tests.e2e.server import serve_app
from tests.fixtures.capacity import make_fleet, make_quota, make_shape
from tests.fixtures.factories import Tenant, make_api_key, make_org

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0  # upper bound for the reconciler to move a simulated tenancy along


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app drives tenancies itself."""
    return settings.model_copy(update={"reconciler_enabled": True})


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock) -> tuple[Tenant, str]:
    """An organization with a member's API key; two 8x H100 nodes and shapes in Québec."""
    org = await make_org(db, "acme-gpu")
    secret = await make_api_key(db, org, TenantRole.MEMBER)
    await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-h100")
    await make_shape(db, clock, region="ca-qc-1", name="small", model="h100", gpus_per_node=1,
                     price="3.10")  # fmt: skip
    await make_shape(db, clock, region="ca-qc-1", name="medium", model="h100", gpus_per_node=2,
                     price="6.00", interconnect="nvlink")  # fmt: skip
    await make_quota(db, clock, max_gpus=12)
    await db.commit()
    return org, secret


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    """The app served for real; ``app`` (not started) empties the tables afterwards."""
    with serve_app(settings, clock=clock) as url:
        yield url


class TestSdk:
    def test_create_wait_resize_release_with_progress(
        self, base_url: str, world: tuple[Tenant, str]
    ) -> None:
        org, secret = world
        seen: list[str] = []

        def progress(tenancy: TenancyRead, events: Sequence[TenancyEventRead]) -> None:
            seen.extend(e.to_state or e.kind for e in events)

        with Client(base_url, secret) as client:
            created = client.tenancies.create(
                "train-sdk", "slurm", "any", shape="medium", labels={"team": "nlp"}
            )
            assert created.state == "provisioning"
            assert created.simulated
            active = client.tenancies.wait(created.id, "active", TIMEOUT, on_progress=progress)
            assert active.facts["access"] == "sbatch"
            assert [a.hostname.startswith("qc-h100-") for a in active.allocations] == [True]
            assert seen[:2] == ["placing", "provisioning"]
            assert seen[-1] == "active"

            resized = client.tenancies.resize(created.id, 4)
            assert resized.pending_resize
            assert resized.gpu_count == 4
            settled = client.tenancies.wait(created.id, "active", TIMEOUT)
            assert not settled.pending_resize
            assert len(settled.allocations[0].gpu_indices) == 4

            listed = client.tenancies.list(state="active", org_id=org.org_id).to_list()
            assert [t.id for t in listed] == [created.id]
            assert client.tenancies.quotas() == client.quotas.of_org(org.org_id)
            [quota] = client.tenancies.quotas()
            assert (quota.max_gpus, quota.in_use) == (12, 4)

            assert client.tenancies.release(created.id).state == "releasing"
            released = client.tenancies.wait(created.id, "released", TIMEOUT)
            assert released.allocations == []
            assert released.released_at is not None
            kinds = [e.to_state or e.kind for e in client.tenancies.events(created.id)]
            assert kinds[-3:] == ["releasing", "cleaning", "released"]
            assert "step" in kinds  # the resize and the installing image are on the timeline

    def test_shapes_suggestions_and_refusals(
        self, base_url: str, world: tuple[Tenant, str]
    ) -> None:
        _, secret = world
        with Client(base_url, secret) as client:
            assert [s.name for s in client.shapes.list("ca-qc-1")] == ["small", "medium"]
            assert client.tenancies.shapes("se-north-1") == []
            suggestion = client.tenancies.suggest_shape(150, 2, "nvlink")
            assert suggestion.shape is not None
            assert suggestion.shape.name == "medium"
            assert client.tenancies.suggest_shape(5000, 8).shape is None

            with pytest.raises(ConflictError) as too_big:
                client.tenancies.create("huge", "vm", "ca-qc-1", gpu_model="h100",
                                        gpus_per_node=8, node_count=3)  # fmt: skip
            assert too_big.value.type.endswith("/quota-exceeded")
            with pytest.raises(ValidationError) as both:
                client.tenancies.create("x", "vm", "ca-qc-1", shape="small", gpu_model="h100",
                                        gpus_per_node=1)  # fmt: skip
            assert both.value.errors[0].field == "body.shape"
            with pytest.raises(NotFoundError):
                client.tenancies.get("ten_doesnotexist")

    def test_wait_stops_on_a_failed_tenancy_and_on_its_timeout(
        self, base_url: str, world: tuple[Tenant, str]
    ) -> None:
        _, secret = world
        with Client(base_url, secret) as client:
            broken = client.tenancies.create("broken", "bare_metal", "ca-qc-1", gpu_model="h100",
                                             gpus_per_node=8, image="windows-95")  # fmt: skip
            with pytest.raises(TenancyFailedError) as failed:
                client.tenancies.wait(broken.id, "active", TIMEOUT)
            assert "windows-95" in str(failed.value)
            slow = client.tenancies.create("slow", "slurm", "ca-qc-1", shape="small")
            with pytest.raises(WaitTimeoutError) as waited:
                client.tenancies.wait(slow.id, "released", 0.0)
            assert waited.value.tenancy.id == slow.id


def cpctl(home: Path, *args: str, input: str | None = None) -> Result:
    """``cpctl`` in-process with ``home``'s private profiles file and no inherited CP_ vars."""
    env = {"CPCTL_CONFIG": str(home / "profiles.toml"), "CPCTL_PROFILE": None}
    env |= {"CP_URL": None, "CP_API_KEY": None}
    return CliRunner(env=env).invoke(cli, list(args), input=input)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


class TestCpctl:
    def test_create_wait_resize_release_and_read_shapes_and_quotas(
        self, base_url: str, world: tuple[Tenant, str], tmp_path: Path
    ) -> None:
        _, secret = world
        key_file = tmp_path / "id.pub"
        key_file.write_text(
            "# laptop\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5 me@x\n"
        )
        added = cpctl(tmp_path, "profile", "add", "acme", "--url", base_url, "--api-key", secret,
                      "--use")  # fmt: skip
        assert added.exit_code == 0, added.output

        created_run = cpctl(
            tmp_path, "-o", "json", "tenancies", "create", "train-cli", "--kind", "slurm",
            "--region", "ca-qc-1", "--shape", "small", "--label", "team=cv",
            "--ssh-key-file", str(key_file), "--wait", "--timeout", str(TIMEOUT),
        )  # fmt: skip
        created = ok_json(created_run)
        assert created["state"] == "active"
        assert created["labels"] == {"team": "cv"}
        assert len(created["ssh_public_keys"]) == 1
        assert "provisioning" in created_run.stderr
        assert "active" in created_run.stderr
        tenancy_id = created["id"]

        table = cpctl(tmp_path, "tenancies", "get", tenancy_id)
        assert table.exit_code == 0, table.output
        assert re.search(r"^fact +access: sbatch$", table.stdout, re.M)
        assert re.search(r"^allocation +qc-h100-0\d: GPUs \d$", table.stdout, re.M)
        listing = cpctl(tmp_path, "tenancies", "list", "--state", "active")
        assert tenancy_id in listing.stdout
        assert "yes" in listing.stdout

        resized = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "resize", tenancy_id,
                                "--gpus-per-node", "3", "--wait"))  # fmt: skip
        assert resized["gpu_count"] == 3
        assert not resized["pending_resize"]

        events = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "events", tenancy_id))
        assert [e["to_state"] for e in events if e["kind"] == "transition"] == [
            "placing", "provisioning", "active",
        ]  # fmt: skip

        refused = cpctl(tmp_path, "tenancies", "release", tenancy_id)  # no --yes, no answer
        assert refused.exit_code != 0
        released_run = cpctl(tmp_path, "-o", "json", "tenancies", "release", tenancy_id, "--yes",
                             "--wait")  # fmt: skip
        assert ok_json(released_run)["state"] == "released"
        assert "cleaning" in released_run.stderr
        waited = ok_json(cpctl(tmp_path, "-o", "json", "tenancies", "wait", tenancy_id,
                               "--state", "released"))  # fmt: skip
        assert waited["released_at"] is not None

        shapes = cpctl(tmp_path, "shapes", "list", "--region", "ca-qc-1")
        assert shapes.exit_code == 0, shapes.output
        assert "small" in shapes.stdout
        assert "3.10 CAD" in shapes.stdout
        suggestion = cpctl(tmp_path, "shapes", "suggest", "--gpu-memory-gib", "150", "--gpus", "2")
        assert suggestion.exit_code == 0, suggestion.output
        assert suggestion.stdout.startswith("medium in ca-qc-1")
        quotas = ok_json(cpctl(tmp_path, "-o", "json", "quotas", "show"))
        assert [(q["max_gpus"], q["in_use"]) for q in quotas] == [(12, 0)]

    def test_refusals_exit_non_zero_with_the_problem(
        self, base_url: str, world: tuple[Tenant, str], tmp_path: Path
    ) -> None:
        _, secret = world
        cpctl(tmp_path, "profile", "add", "acme", "--url", base_url, "--api-key", secret, "--use")

        no_size = cpctl(tmp_path, "tenancies", "create", "x", "--kind", "vm")
        too_big = cpctl(tmp_path, "tenancies", "create", "x", "--kind", "vm", "--region",
                        "ca-qc-1", "--gpu-model", "h100", "--gpus-per-node", "8",
                        "--nodes", "3")  # fmt: skip
        bad_label = cpctl(tmp_path, "tenancies", "create", "x", "--kind", "vm", "--shape",
                          "small", "--label", "nolabel")  # fmt: skip

        assert no_size.exit_code == 2
        assert "--shape" in no_size.stderr
        assert too_big.exit_code == 1
        assert "409" in too_big.stderr
        assert "quota" in too_big.stderr.lower()
        assert bad_label.exit_code == 2
        assert "KEY=VALUE" in bad_label.stderr
