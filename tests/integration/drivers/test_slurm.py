"""The ``slurm`` driver against a real Slurm 22.05 (slurmdbd on MariaDB, slurmctld, two
slurmd with 8 fake H100s each through GRES), started once per test session."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.identity.roles import TenantRole
from control_plane.ids import new_id
from control_plane.inventory.models import Node
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    PermanentError,
    RetryableError,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.drivers.slurm import SlurmConfig, SlurmDriver, slurm_name
from control_plane.tenancies.wiring import build_reconciler
from tests.conftest import need_peer
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import make_org, signed_in
from tests.fixtures.peers.slurm import SlurmCluster, slurm_available
from tests.integration.drivers.contract import DriverContract, ResizableContract, converge

pytestmark = pytest.mark.peer_slurm

REGION = "ca-qc-1"
CONVERGE_SECONDS = 180.0  # a bound for the whole path to settle on a busy machine
WAIT_SECONDS = 30.0


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    need_peer(slurm_available())
    with SlurmCluster(nodes=("gpu01", "gpu02"), gpus_per_node=8, gpu_type="h100") as cluster:
        yield cluster


@pytest.fixture
def slurm_settings(slurm_cluster: SlurmCluster, tmp_path: Path) -> Settings:
    return Settings(
        drivers={f"{REGION}/slurm": "slurm"},
        slurm_conf=slurm_cluster.conf,
        slurm_command_timeout_seconds=20,
        # the tests submit jobs as root, so root joins every tenancy account
        slurm_admin_users=["root"],
        key_dir=tmp_path / "keys",
    )


@pytest.fixture
def driver(slurm_settings: Settings) -> SlurmDriver:
    built = Drivers(slurm_settings).for_tenancy(REGION, TenancyKind.SLURM)
    assert isinstance(built, SlurmDriver)
    return built


def _allocation(tenancy_id: str, *nodes: tuple[str, tuple[int, ...]]) -> Allocation:
    return Allocation(
        tenancy_id=tenancy_id,
        org_id="org_contract",
        region=REGION,
        kind=TenancyKind.SLURM,
        gpu_model="h100-sxm",
        nodes=tuple(
            AllocatedNode(
                node_id=f"node_{host}", hostname=host, bmc_endpoint="", rack="r1",
                gpu_indices=gpus,
            )
            for host, gpus in nodes
        ),
    )  # fmt: skip


async def _teardown(driver: SlurmDriver, *allocations: Allocation) -> None:
    for allocation in allocations:
        if not (await driver.describe(allocation)).exists:
            continue
        await converge(driver.release, allocation)
        await converge(driver.clean, allocation)


@pytest.fixture
async def allocation(driver: SlurmDriver) -> AsyncIterator[Allocation]:
    """Two GPUs on gpu01 for a fresh tenancy; whatever the test left is removed after."""
    made = _allocation(new_id("ten"), ("gpu01", (0, 1)))
    yield made
    await _teardown(driver, made)


@pytest.fixture
def resized(allocation: Allocation) -> Allocation:
    return replace(
        allocation,
        nodes=(*allocation.nodes, _allocation("x", ("gpu02", (0, 1, 2, 3))).nodes[0]),
    )


@pytest.fixture
def side_effects(slurm_cluster: SlurmCluster) -> Any:
    async def read(allocation: Allocation) -> dict[str, Any]:
        return await asyncio.to_thread(_slurm_records, slurm_cluster, slurm_name(allocation))

    return read


def _slurm_records(cluster: SlurmCluster, name: str) -> dict[str, Any]:
    """What Slurm holds for a tenancy, and how many accounting changes it has seen."""
    qos = _rows(cluster, "sacctmgr", "-n", "-P", "show", "qos", "withdeleted",
                "format=id,name,grptres,flags")  # fmt: skip
    qos_ids = {row[0] for row in qos if row[1] == name}
    assocs = _rows(cluster, "sacctmgr", "-n", "-P", "show", "assoc", f"account={name}",
                   "format=id,user,qos,defaultqos,grpsubmit")  # fmt: skip
    out = cluster.run("scontrol", "-o", "show", "reservation", name, check=False).stdout
    found = dict(re.findall(r"(\w+)=(\S+)", out))
    reservations = [found] if found else []
    return {
        "qos": [row for row in qos if row[1] == name],
        "associations": sorted(assocs),
        # a reservation made again would start later
        "reservations": [
            {k: r[k] for k in ("StartTime", "Nodes", "Accounts", "Flags")} for r in reservations
        ],
        "transactions": _transactions(cluster, name, qos_ids),
    }


def _transactions(cluster: SlurmCluster, name: str, qos_ids: set[str]) -> int:
    """slurmdbd logs every add, modify and remove: count those touching the tenancy."""
    rows = _rows(cluster, "sacctmgr", "-n", "-P", "show", "transactions",
                 "format=action,where,info%2000")  # fmt: skip
    word = re.compile(rf"(?<![a-z0-9_]){re.escape(name)}(?![a-z0-9_])")
    assoc_ids = {
        match.group(1)
        for row in rows
        if word.search(row[2] if len(row) > 2 else "")
        for match in [re.search(r"id_assoc=(\d+)", row[1])]
        if match
    }
    count = 0
    for action, where, *info in rows:
        ids = set(re.findall(r"id_assoc=(\d+)", where))
        about_qos = "QOS" in action and any(f"id='{i}'" in where for i in qos_ids)
        if word.search(where) or word.search("|".join(info)) or ids & assoc_ids or about_qos:
            count += 1
    return count


def _rows(cluster: SlurmCluster, *args: str) -> list[list[str]]:
    out = cluster.run(*args).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


# --- jobs -----------------------------------------------------------------------------


def _submit(
    cluster: SlurmCluster, account: str, *options: str, command: str = "sleep 30"
) -> tuple[str | None, str]:
    """Submit a batch job as root; the job id, or None and Slurm's refusal."""
    result = cluster.run(
        "sbatch", "--parsable", "-A", account, "--chdir=/tmp", "--output=/dev/null",
        *options, "--wrap", command, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return None, result.stderr
    return result.stdout.strip().split(";")[0], ""


def _job(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    out = cluster.run("scontrol", "-o", "show", "job", job_id, check=False).stdout
    if "JobState=" in out:
        return dict(re.findall(r"(\w+)=(\S+)", out))
    # slurmctld forgot the finished job: ask accounting
    state = cluster.run("sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State").stdout
    return {"JobState": state.strip().split(" ")[0] or "UNKNOWN"}


async def _wait_for_job(
    cluster: SlurmCluster, job_id: str, *states: str, reason: str | None = None
) -> dict[str, str]:
    """Poll until the job reaches one of ``states`` (and, if given, waits for ``reason``)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job = await asyncio.to_thread(_job, cluster, job_id)
        if job["JobState"] in states and reason in (None, job.get("Reason")):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} is {job}, never {states} {reason}:\n{cluster.logs()}")
        await asyncio.sleep(0.2)


class TestSlurmDriver(DriverContract, ResizableContract):
    async def test_is_a_real_driver_chosen_from_settings(self, driver: SlurmDriver) -> None:
        assert driver.name == "slurm"
        assert not driver.simulated
        assert driver.kind is TenancyKind.SLURM

    async def test_provision_creates_the_account_qos_and_reservation(
        self, driver: SlurmDriver, allocation: Allocation, slurm_cluster: SlurmCluster
    ) -> None:
        result = await converge(driver.provision, allocation)
        name = slurm_name(allocation)
        records = _slurm_records(slurm_cluster, name)
        assert [row[2:] for row in records["qos"]] == [
            ["gres/gpu=2", "DenyOnLimit,RequiresReservation"]
        ]
        users = {row[1]: row for row in records["associations"]}
        assert set(users) == {"", name, "root"}  # the account, its own user, the operator
        assert users[""][2:5] == [name, name, ""]  # only its QOS, open to submissions
        assert records["reservations"][0]["Nodes"] == "gpu01"
        assert records["reservations"][0]["Accounts"] == name
        assert result.facts["account"] == name
        assert result.facts["reservation"] == name
        assert result.facts["cluster"] == slurm_cluster.cluster_name

    async def test_a_job_makes_the_tenancy_busy_and_release_cancels_it(
        self, driver: SlurmDriver, allocation: Allocation, slurm_cluster: SlurmCluster
    ) -> None:
        await converge(driver.provision, allocation)
        name = slurm_name(allocation)
        assert (await driver.describe(allocation)).busy is False
        job_id, refusal = _submit(slurm_cluster, name, f"--reservation={name}", "--gres=gpu:1")
        assert job_id, refusal
        job = await _wait_for_job(slurm_cluster, job_id, "RUNNING")
        assert job["NodeList"] == "gpu01"  # on the placed node
        observed = await driver.describe(allocation)
        assert observed.busy is True
        assert observed.ready

        await converge(driver.release, allocation)

        await _wait_for_job(slurm_cluster, job_id, "CANCELLED")
        assert (await driver.describe(allocation)).busy is False
        # and the account takes no new job until it is provisioned again
        job_id, refusal = _submit(slurm_cluster, name, f"--reservation={name}")
        assert job_id is None, "a released tenancy accepted a job"
        assert refusal

    async def test_busy_clears_when_the_jobs_end(
        self, driver: SlurmDriver, allocation: Allocation, slurm_cluster: SlurmCluster
    ) -> None:
        """What idle auto-release watches: no job queued or running."""
        await converge(driver.provision, allocation)
        name = slurm_name(allocation)
        job_id, refusal = _submit(slurm_cluster, name, f"--reservation={name}", command="true")
        assert job_id, refusal
        await _wait_for_job(slurm_cluster, job_id, "COMPLETED")
        deadline = time.monotonic() + WAIT_SECONDS
        while (await driver.describe(allocation)).busy:  # COMPLETING until slurmd reports
            assert time.monotonic() < deadline, "job never left the queue"
            await asyncio.sleep(0.2)

    async def test_qos_refuses_more_gpus_than_the_tenancy_has(
        self, driver: SlurmDriver, allocation: Allocation, slurm_cluster: SlurmCluster
    ) -> None:
        await converge(driver.provision, allocation)
        name = slurm_name(allocation)
        job_id, refusal = _submit(slurm_cluster, name, f"--reservation={name}", "--gres=gpu:3")
        assert job_id is None
        assert "QOSGrpGRES" in refusal

        first, refusal = _submit(slurm_cluster, name, f"--reservation={name}", "--gres=gpu:2")
        assert first, refusal
        await _wait_for_job(slurm_cluster, first, "RUNNING")
        second, refusal = _submit(slurm_cluster, name, f"--reservation={name}", "--gres=gpu:1")
        assert second, refusal
        # the tenancy's 2 GPUs are all in use: the scheduler holds the job back
        await _wait_for_job(slurm_cluster, second, "PENDING", reason="QOSGrpGRES")

    async def test_jobs_keep_to_the_tenancy_reservation_on_a_shared_node(
        self, driver: SlurmDriver, allocation: Allocation, slurm_cluster: SlurmCluster
    ) -> None:
        """Two tenancies on gpu01: each one's jobs must name its own reservation, so none
        lands outside its placement or in the neighbour's."""
        neighbour = _allocation(new_id("ten"), ("gpu01", (2, 3, 4)))
        try:
            await converge(driver.provision, allocation)
            await converge(driver.provision, neighbour)
            assert (await driver.describe(neighbour)).ready
            ours, theirs = slurm_name(allocation), slurm_name(neighbour)
            assert _submit(slurm_cluster, ours, "--gres=gpu:1")[0] is None
            assert _submit(slurm_cluster, ours, f"--reservation={theirs}")[0] is None
            job_id, refusal = _submit(slurm_cluster, theirs, f"--reservation={theirs}",
                                      "--gres=gpu:3", command="true")  # fmt: skip
            assert job_id, refusal
        finally:
            await _teardown(driver, neighbour)

    async def test_provision_repairs_a_limit_changed_behind_its_back(
        self, driver: SlurmDriver, allocation: Allocation, slurm_cluster: SlurmCluster
    ) -> None:
        await converge(driver.provision, allocation)
        name = slurm_name(allocation)
        slurm_cluster.run("sacctmgr", "-i", "modify", "qos", "where", f"name={name}",
                          "set", "GrpTRES=gres/gpu=8")  # fmt: skip
        drifted = await driver.describe(allocation)
        assert not drifted.ready
        assert "gres/gpu=8" in drifted.detail
        await converge(driver.provision, allocation)
        assert (await driver.describe(allocation)).ready
        assert _slurm_records(slurm_cluster, name)["qos"][0][2] == "gres/gpu=2"

    async def test_resize_moves_the_limit_and_the_reservation(
        self, driver: SlurmDriver, allocation: Allocation, resized: Allocation,
        slurm_cluster: SlurmCluster,
    ) -> None:  # fmt: skip
        await converge(driver.provision, allocation)
        await driver.resize(resized, allocation)
        records = _slurm_records(slurm_cluster, slurm_name(allocation))
        assert records["qos"][0][2] == "gres/gpu=6"
        assert records["reservations"][0]["Nodes"] == "gpu[01-02]"


class TestValidation:
    async def test_unknown_node_is_refused_for_good(
        self, driver: SlurmDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="gpu99"):
            await driver.validate(_allocation(allocation.tenancy_id, ("gpu99", (0,))))

    async def test_more_gpus_than_the_node_has_is_refused(
        self, driver: SlurmDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="8 GPUs"):
            await driver.validate(_allocation(allocation.tenancy_id, ("gpu01", tuple(range(9)))))

    async def test_fractional_gpus_are_refused(
        self, driver: SlurmDriver, allocation: Allocation
    ) -> None:
        node = replace(allocation.nodes[0], gpu_milli=500)
        with pytest.raises(PermanentError, match="whole GPUs"):
            await driver.validate(replace(allocation, nodes=(node,)))

    async def test_a_name_slurm_cannot_take_is_refused(
        self, driver: SlurmDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="cannot name a Slurm account"):
            await driver.validate(replace(allocation, tenancy_id="ten with spaces"))

    async def test_a_host_name_that_would_widen_the_node_list_is_refused(
        self, driver: SlurmDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="cannot name a Slurm node"):
            await driver.validate(_allocation(allocation.tenancy_id, ("gpu[01-02]", (0,))))


class TestConfiguration:
    def test_a_region_override_picks_its_own_cluster(self, tmp_path: Path) -> None:
        settings = Settings(
            key_dir=tmp_path,
            slurm_conf=Path("/etc/slurm/slurm.conf"),
            slurm_regions={"se-sto-1": {"conf": "/etc/slurm-sto/slurm.conf", "cluster": "sto"}},
        )
        assert SlurmConfig.from_settings(settings, "se-sto-1").conf == Path(
            "/etc/slurm-sto/slurm.conf"
        )
        assert SlurmConfig.from_settings(settings, "se-sto-1").cluster == "sto"
        assert SlurmConfig.from_settings(settings, REGION).conf == Path("/etc/slurm/slurm.conf")

    def test_an_unknown_region_option_is_refused(self, tmp_path: Path) -> None:
        settings = Settings(key_dir=tmp_path, slurm_regions={REGION: {"confg": "/x"}})
        with pytest.raises(ValueError, match="confg"):
            SlurmConfig.from_settings(settings, REGION)


class TestUnreachableCluster:
    @pytest.fixture
    def dead_driver(self, slurm_cluster: SlurmCluster, tmp_path: Path) -> SlurmDriver:
        """The same cluster's configuration with the daemons' ports pointing nowhere."""
        for conf in slurm_cluster.conf.parent.glob("*.conf"):
            if conf.name != "slurmdbd.conf":
                shutil.copy(conf, tmp_path / conf.name)
        conf = tmp_path / "slurm.conf"
        text = re.sub(r"(?m)^SlurmctldPort=\d+", "SlurmctldPort=1", conf.read_text())
        conf.write_text(re.sub(r"(?m)^AccountingStoragePort=\d+", "AccountingStoragePort=1", text))
        return SlurmDriver(
            SlurmConfig(conf=conf, cluster=slurm_cluster.cluster_name, timeout_seconds=2)
        )

    async def test_health_says_which_daemon_is_down(self, dead_driver: SlurmDriver) -> None:
        health = await dead_driver.health()
        assert not health.ok
        assert "slurmctld" in health.detail
        assert "slurmdbd" in health.detail

    async def test_steps_fail_retryably(
        self, dead_driver: SlurmDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(RetryableError):
            await dead_driver.describe(allocation)
        with pytest.raises(RetryableError):
            await dead_driver.provision(allocation)
        with pytest.raises(RetryableError):
            await dead_driver.validate(allocation)


# --- the whole path: API, reconciler, this driver, a real Slurm --------------------------


@pytest.fixture
def settings(database_url: str, tmp_path: Path, slurm_cluster: SlurmCluster) -> Settings:
    """The app's settings with Slurm tenancies of REGION going to the real cluster."""
    return Settings(
        database_url=database_url, key_dir=tmp_path / "keys", sim_dir=tmp_path / "sim",
        reconciler_enabled=False, environment="test", cookie_secure=False,
        login_rate_per_minute=1000, drivers={f"{REGION}/slurm": "slurm"},
        slurm_conf=slurm_cluster.conf, slurm_command_timeout_seconds=20,
        slurm_admin_users=["root"],
    )  # fmt: skip


class TestThroughTheApi:
    async def test_a_member_gets_a_slurm_account_runs_a_job_and_releases_it(
        self, app: Litestar, client: Any, db: AsyncSession, clock: OffsetClock,
        slurm_cluster: SlurmCluster,
    ) -> None:  # fmt: skip
        await make_fleet(db, clock, region=REGION, nodes=1, gpus_per_node=8, prefix="api")
        await db.execute(update(Node).where(Node.hostname == "api-00").values(hostname="gpu02"))
        org = await make_org(db, roles=(TenantRole.MEMBER,))
        await db.commit()
        auth = await signed_in(client, org.accounts[TenantRole.MEMBER])
        engine = make_engine(app.state.settings.database_url)

        async def pause(seconds: float) -> None:
            await asyncio.sleep(seconds)  # real time: the peer moves on its own clock

        # Built as the app builds it, on this test's event loop: drivers reveal secrets
        # through a session of this engine.
        reconciler = build_reconciler(make_sessionmaker(engine), clock, app.state.settings)
        reconciler.pause = pause
        url = f"/api/v1/orgs/{org.org_id}/tenancies"
        try:
            created = await client.post(url, headers=auth, json={
                "name": "train", "kind": "slurm", "region": REGION, "gpu_model": "h100",
                "gpus_per_node": 2,
            })  # fmt: skip
            assert created.status_code == 201, created.text
            tenancy_url = f"{url}/{created.json()['id']}"
            await asyncio.wait_for(reconciler.converge(max_passes=500), CONVERGE_SECONDS)
            body = (await client.get(tenancy_url, headers=auth)).json()
            assert (body["state"], body["driver"], body["simulated"]) == ("active", "slurm", False)
            account = body["facts"]["account"]
            job_id, refusal = _submit(slurm_cluster, account, f"--reservation={account}",
                                      "--gres=gpu:2")  # fmt: skip
            assert job_id, refusal
            job = await _wait_for_job(slurm_cluster, job_id, "RUNNING")
            assert job["NodeList"] == "gpu02"

            assert (await client.post(f"{tenancy_url}/release", headers=auth)).status_code == 200
            await asyncio.wait_for(reconciler.converge(max_passes=500), CONVERGE_SECONDS)
            body = (await client.get(tenancy_url, headers=auth)).json()
            assert body["state"] == "released"
            await _wait_for_job(slurm_cluster, job_id, "CANCELLED")
            assert _slurm_records(slurm_cluster, account)["reservations"] == []
            job_id, refusal = _submit(slurm_cluster, account, f"--reservation={account}")
            assert job_id is None, "a released tenancy's account still takes jobs"
        finally:
            await engine.dispose()
