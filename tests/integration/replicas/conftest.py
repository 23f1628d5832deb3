"""Fixtures of the multi-replica suite: three control-plane processes on the run's
PostgreSQL database (migrated once by ``database_url``), an organization with a fleet and an
API key, and helpers to wait on the database.

Several processes on one SQLite file is not a supported deployment, so on the SQLite run
every test here is skipped."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.keyfiles import load_keyring
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver
from control_plane.tenancies.models import Tenancy
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant, make_api_key, make_org
from tests.fixtures.replica_app import MARKER_ENV
from tests.fixtures.replicas import Cluster, Replica, replica_env

StartCluster = Callable[..., Awaitable[Cluster]]
REGION = "ca-qc-1"


@pytest.fixture(autouse=True)
def postgres_only(db_kind: str) -> None:
    if db_kind != "postgres":
        pytest.skip("several control-plane replicas need PostgreSQL (SQLite has one writer)")


def base_settings(settings: Settings) -> dict[str, object]:
    """What every replica shares: the database, keys, simulated data centre; a reconciler
    that looks for work often; no autoscaler (no endpoints here)."""
    return {
        "database_url": settings.database_url,
        "key_dir": settings.key_dir,
        "sim_dir": settings.sim_dir,
        "model_store_root": settings.model_store_root,
        "triton_dir": settings.triton_dir,
        "environment": "test",
        "cookie_secure": "false",
        "log_format": "console",
        "log_level": "WARNING",
        "login_rate_per_minute": 10_000,
        "api_key_cache_seconds": 2.0,
        "reconciler_enabled": "true",
        "reconcile_interval_seconds": 0.2,
        "reconcile_lease_seconds": 10,
        "autoscale_enabled": "false",
        "gateway_flush_seconds": 0.5,
    }


@pytest.fixture
async def start_cluster(
    db: AsyncSession, settings: Settings, tmp_path: Path
) -> AsyncIterator[StartCluster]:
    """``await start_cluster(3, sim_boot_polls=4)``: replicas with settings overridden;
    with ``hang_marker``, the first one hangs holding its lease after its first provisioning
    call (see ``tests.fixtures.replica_app``).

    Depends on ``db`` (hence ``app``), so the replicas are gone before the tables are
    emptied. The deployment's key files exist before any replica starts, as a release's
    Secret would provide them (the ``app`` fixture made the idempotency key)."""
    load_keyring(settings.key_dir, settings.region, OffsetClock().now())
    clusters: list[Cluster] = []

    async def start(
        count: int = 3, hang_marker: Path | None = None, **overrides: object
    ) -> Cluster:
        env = replica_env(os.environ, {**base_settings(settings), **overrides})
        cluster = Cluster(env, logs=tmp_path)
        clusters.append(cluster)
        first = None
        if hang_marker is not None:  # the first replica stops after a driver call
            first = Replica(0, {**env, MARKER_ENV: str(hang_marker)}, tmp_path / "replica-0.log",
                            app="tests.fixtures.replica_app:create")  # fmt: skip
        await cluster.start(count, first)
        return cluster

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.close()


class World:
    """An organization with an admin API key and a fleet of 8x H100 nodes in ca-qc-1."""

    def __init__(self, tenant: Tenant, key: str, sim_dir: Path) -> None:
        self.tenant = tenant
        self.headers = {"Authorization": f"Bearer {key}"}
        self.sim = SimDriver(kind=TenancyKind.SLURM, state_dir=sim_dir)

    @property
    def tenancies_path(self) -> str:
        return f"/api/v1/orgs/{self.tenant.org_id}/tenancies"

    def effects(self, tenancy_id: str) -> dict[str, int]:
        return self.sim.effects(REGION, tenancy_id)


@pytest.fixture
async def world(db: AsyncSession, clock: OffsetClock, settings: Settings) -> World:
    tenant = await make_org(db, roles=(TenantRole.OWNER, TenantRole.ADMIN))
    await make_fleet(db, clock, nodes=5, gpus_per_node=8, prefix="rep-h100")
    key = await make_api_key(db, tenant, TenantRole.ADMIN)
    await db.commit()
    return World(tenant, key, settings.sim_dir)


def slurm_tenancy(name: str, gpus: int = 1) -> dict[str, Any]:
    return {"name": name, "kind": "slurm", "region": REGION, "gpu_model": "h100",
            "gpus_per_node": gpus}  # fmt: skip


async def states(db: AsyncSession, ids: list[str]) -> dict[str, str]:
    """Each tenancy's state as committed now (a fresh read, not the session's cache)."""
    db.expire_all()
    rows = await db.execute(select(Tenancy.id, Tenancy.state).where(Tenancy.id.in_(ids)))
    await db.rollback()
    return {tenancy_id: str(state) for tenancy_id, state in rows.all()}


async def wait_for_states(
    db: AsyncSession, ids: list[str], wanted: str, within: float = 45.0
) -> dict[str, str]:
    """Poll until every tenancy is in ``wanted``; fails with what is not, at the deadline."""
    deadline = time.monotonic() + within
    while True:
        now = await states(db, ids)
        if len(now) == len(ids) and all(state == wanted for state in now.values()):
            return now
        if time.monotonic() > deadline:
            lagging = {k: v for k, v in now.items() if v != wanted}
            raise AssertionError(f"not {wanted} after {within}s: {lagging}")
        await asyncio.sleep(0.25)


async def sign_in(client: httpx.AsyncClient, url: str, tenant: Tenant) -> dict[str, str]:
    """Session headers (cookie + CSRF) for the organization's owner; sessions live in the
    database, so any replica accepts them."""
    account = tenant.accounts[TenantRole.OWNER]
    body = {"email": account.email, "password": account.password}
    response = await client.post(f"{url}/api/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    token = response.cookies["cp_session"]
    return {"X-CSRF-Token": response.json()["csrf_token"], "Cookie": f"cp_session={token}"}
