"""The node agent, as a real ``cpctl agent run`` process (fake NVML: four simulated GPUs),
ships its samples through the real ingest API of a running control plane with a credential
an operator issued; the server rolls them up and the customer holding two of the GPUs sees
its own; after the credential is revoked nothing more gets in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.ids import new_id
from control_plane.inventory.models import Gpu, Node, Site
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from control_plane.telemetry.agent.fake_nvml import fake_uuid
from tests.e2e.server import serve_app
from tests.fixtures.factories import (
    PASSWORD,
    bearer,
    make_api_key,
    make_org,
    make_user,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app rolls telemetry up by itself, quickly."""
    return settings.model_copy(update={"telemetry_rollup_seconds": 0.2})


@pytest.fixture
async def node(db: AsyncSession, clock: OffsetClock) -> str:
    """A 4-GPU H100 node in Québec whose GPUs are the fake NVML's (same UUIDs)."""
    await seed_catalog(db, clock)
    site = await db.get(Site, "qc-mtl-1")
    assert site is not None
    node = Node(
        id=new_id("node"), hostname=f"agent-{uuid.uuid4().hex[:6]}", region_code="ca-qc-1",
        site_code=site.code, rack="r01", bmc_endpoint="https://bmc-agent.internal",
        gpu_model_code="h100", gpu_count=4, firmware_version="1", driver_version="550",
        state="available", state_changed_at=clock.now(), created_at=clock.now(),
    )  # fmt: skip
    db.add(node)
    await db.flush()
    db.add_all(
        Gpu(id=new_id("gpu"), node_id=node.id, uuid=fake_uuid(i), index=i, model_code="h100",
            nvlink_domain=f"{node.hostname}-nvl")
        for i in range(4)
    )  # fmt: skip
    await db.commit()
    return node.id


@dataclass(frozen=True)
class People:
    org_id: str
    key: dict[str, str]  # a member's API key
    operator_email: str  # an operator-admin


@pytest.fixture
async def people(db: AsyncSession) -> People:
    customer = await make_org(db, roles=(TenantRole.MEMBER,))
    key = bearer(await make_api_key(db, customer, TenantRole.MEMBER))
    ops = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return People(customer.org_id, key, ops.email)


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    with serve_app(settings, clock=clock) as url:
        yield url


def run_agent(url: str, credential: Path, spool: Path) -> subprocess.Popen[str]:
    args = ["--url", url, "--credential-file", str(credential), "--source", "fake"]
    args += ["--interval", "0.2", "--batch-seconds", "0.5", "--spool-dir", str(spool)]
    args += ["--metrics-port", "0"]
    code = "from control_plane.cli.main import cli; cli()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CP_AGENT_CREDENTIAL", None)
    return subprocess.Popen(
        [sys.executable, "-c", code, "agent", "run", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(agent: subprocess.Popen[str]) -> str:
    agent.send_signal(signal.SIGTERM)
    _, stderr = agent.communicate(timeout=30)
    assert agent.returncode == 0, stderr
    return stderr


def stop_once_logged(agent: subprocess.Popen[str], text: str) -> str:
    """Stop the agent once its log shows ``text`` (or after ``TIMEOUT``); its whole log.
    (A fixed wait could end before a slow machine's agent set up its SIGTERM handler.)"""
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in agent.stderr or ():
            lines.append(line)
            if text in line:
                seen.set()

    def drain() -> None:  # the agent never blocks on a full stdout pipe
        if agent.stdout is not None:
            agent.stdout.read()

    readers = [threading.Thread(target=read, daemon=True),
               threading.Thread(target=drain, daemon=True)]  # fmt: skip
    for reader in readers:
        reader.start()
    seen.wait(TIMEOUT)
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    for reader in readers:
        reader.join(timeout=30)
    assert agent.returncode == 0, "".join(lines)
    return "".join(lines)


class TestNodeAgentAgainstTheControlPlane:
    def test_agent_samples_reach_the_customer_and_revocation_stops_them(
        self, base_url: str, node: str, people: People, tmp_path: Path
    ) -> None:
        key = people.key
        with httpx.Client(base_url=base_url, timeout=30) as http:
            operator = sign_in(http, people.operator_email)
            issued = http.post(f"/api/v1/nodes/{node}/agent-credentials", headers=operator)
            assert issued.status_code == 201, issued.text
            credential = tmp_path / "credential"
            credential.write_text(issued.json()["credential"])
            credential.chmod(0o600)
            # The customer holds two of the node's GPUs.
            made = http.post(f"/api/v1/orgs/{people.org_id}/tenancies", headers=key, json={
                "name": "agent-e2e", "kind": "slurm", "region": "ca-qc-1", "gpu_model": "h100",
                "gpus_per_node": 2})  # fmt: skip
            assert made.status_code == 201, made.text
            tenancy = made.json()

            agent = run_agent(base_url, credential, tmp_path / "spool")
            try:
                report = _wait_for_hours(http, people.org_id, tenancy["id"], key)
            finally:
                stderr = stop(agent)

            assert issued.json()["credential"] not in stderr
            assert list((tmp_path / "spool").glob("*.json")) == []  # everything shipped
            held = {g["gpu_id"] for g in report["gpus"]}
            assert len(held) == 2  # its own GPUs only, not the other two of the node
            assert all(g["tenancy_id"] == tenancy["id"] for g in report["gpus"])
            fleet = http.get("/api/v1/fleet/utilization", headers=operator).json()
            [qc] = [r for r in fleet["regions"] if r["region"] == "ca-qc-1"]
            assert qc["points"][-1][1] == 4  # all four GPUs reported this hour
            assert qc["energy_kwh"] > 0

            [listed] = http.get(f"/api/v1/nodes/{node}/agent-credentials",
                                headers=operator).json()  # fmt: skip
            assert listed["last_used_at"] is not None
            revoked = http.delete(f"/api/v1/nodes/{node}/agent-credentials/{listed['id']}",
                                  headers=operator)  # fmt: skip
            assert revoked.status_code == 200, revoked.text
            again = run_agent(base_url, credential, tmp_path / "spool2")
            stderr = stop_once_logged(again, "refused the node credential (401)")
            assert "refused the node credential (401)" in stderr
            kept = list((tmp_path / "spool2").glob("*.json"))
            assert kept, "refused batches stay on disk for when the credential is fixed"


def sign_in(http: httpx.Client, email: str) -> dict[str, str]:
    """Headers acting as ``email`` (its session cookie and CSRF token)."""
    response = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = http.cookies["cp_session"]
    http.cookies.clear()
    return {"X-CSRF-Token": response.json()["csrf_token"], "Cookie": f"cp_session={token}"}


def _wait_for_hours(
    http: httpx.Client, org_id: str, tenancy_id: str, key: dict[str, str]
) -> dict[str, object]:
    """The tenancy's utilization once the server has rolled up its GPUs' samples."""
    deadline = time.monotonic() + TIMEOUT
    since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    while True:
        report = http.get(f"/api/v1/orgs/{org_id}/utilization", headers=key,
                          params={"tenancy": tenancy_id, "since": since}).json()  # fmt: skip
        if len(report.get("gpus", [])) == 2 and all(
            g["points"] and g["points"][-1][0] for g in report["gpus"]
        ):
            return dict(report)
        assert time.monotonic() < deadline, f"no rolled-up samples in time: {report}"
        time.sleep(0.3)
