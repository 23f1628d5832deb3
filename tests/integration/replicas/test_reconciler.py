"""Three replicas reconcile one database: no tenancy is provisioned twice, and when a
replica dies mid-step the others take its leases over once they expire."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.tenancies.models import Tenancy
from tests.integration.replicas.conftest import (
    StartCluster,
    World,
    slurm_tenancy,
    wait_for_states,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STEP_LINE = re.compile(r'^cp_reconciler_steps_total\{outcome="ok",step="(\w+)"\} (\S+)$', re.M)


async def create_spread(client: httpx.AsyncClient, urls: list[str], world: World, count: int,
                        prefix: str) -> list[str]:  # fmt: skip
    """``count`` tenancies created at once, round-robin over the replicas."""

    async def one(n: int) -> str:
        url = f"{urls[n % len(urls)]}{world.tenancies_path}"
        response = await client.post(url, json=slurm_tenancy(f"{prefix}-{n}"),
                                     headers=world.headers)  # fmt: skip
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def steps_by_replica(client: httpx.AsyncClient, urls: list[str]) -> list[dict[str, float]]:
    """Each replica's own count of successful driver steps, from its /metrics."""
    counts = []
    for url in urls:
        text = (await client.get(f"{url}/metrics")).text
        counts.append({step: float(n) for step, n in STEP_LINE.findall(text)})
    return counts


class TestNoDoubleProvisioning:
    async def test_thirty_tenancies_over_three_replicas_are_each_built_and_wiped_once(
        self, start_cluster: StartCluster, world: World, db: AsyncSession
    ) -> None:
        cluster = await start_cluster(3)
        async with httpx.AsyncClient(timeout=20.0) as client:
            ids = await create_spread(client, cluster.urls, world, 30, "train")
            await wait_for_states(db, ids, "active")

            built = {tenancy_id: world.effects(tenancy_id) for tenancy_id in ids}
            assert all(e == {"created": 1, "booted": 1} for e in built.values()), built

            releases = await asyncio.gather(*(
                client.post(f"{cluster.urls[n % 3]}{world.tenancies_path}/{tenancy_id}/release",
                            headers=world.headers)
                for n, tenancy_id in enumerate(ids)
            ))  # fmt: skip
            assert [r.status_code for r in releases] == [200] * len(ids)
            await wait_for_states(db, ids, "released")

            done = {tenancy_id: world.effects(tenancy_id) for tenancy_id in ids}
            once = {"created": 1, "booted": 1, "released": 1, "wiped": 1}
            assert all(e == once for e in done.values()), done
            # The work really was shared: more than one replica ran driver steps.
            per_replica = await steps_by_replica(client, cluster.urls)
        workers = [n for n, steps in enumerate(per_replica) if steps.get("provision", 0) > 0]
        assert len(workers) >= 2, per_replica
        assert sum(s.get("clean", 0) for s in per_replica) == len(ids), per_replica


class TestTakeOver:
    async def test_a_killed_replica_s_leases_expire_and_the_others_finish_its_work(
        self, start_cluster: StartCluster, world: World, db: AsyncSession, tmp_path: Path
    ) -> None:
        # The first replica stops for good right after its first provisioning call (the
        # machine exists, the answer is not written back) and is killed there, holding
        # its lease. Machines take 3 polls (about 4 s at one poll per 2 s).
        marker = tmp_path / "hung-on"
        cluster = await start_cluster(
            3, hang_marker=marker, sim_boot_polls=3, reconcile_lease_seconds=3
        )
        victim = cluster.replicas[0]
        async with httpx.AsyncClient(timeout=20.0) as client:
            # Created through the victim: its wake-up makes it claim work at once.
            ids = await create_spread(client, [victim.url], world, 12, "takeover")
            orphan = await wait_for_file(marker)
            held = await lease_of(db, orphan)
            assert held is not None, "the victim should hold the tenancy's lease"
            await victim.kill()

            await wait_for_states(db, ids, "active", within=60)
            built = {tenancy_id: world.effects(tenancy_id) for tenancy_id in ids}
            assert all(e == {"created": 1, "booted": 1} for e in built.values()), built
            assert await lease_of(db, orphan) is None
            per_replica = await steps_by_replica(client, cluster.urls[1:])
        assert sum(s.get("provision", 0) for s in per_replica) > 0, per_replica


async def wait_for_file(path: Path, within: float = 20.0) -> str:
    """The file's text, once something wrote it."""
    deadline = time.monotonic() + within
    while not (text := await asyncio.to_thread(_read, path)):
        assert time.monotonic() < deadline, f"{path} never written"
        await asyncio.sleep(0.05)
    return text


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def lease_of(db: AsyncSession, tenancy_id: str) -> str | None:
    db.expire_all()
    token = await db.scalar(select(Tenancy.lease_token).where(Tenancy.id == tenancy_id))
    await db.rollback()
    return token
