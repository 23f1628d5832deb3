"""End-to-end tenancy creates per second through the API on PostgreSQL (issue 4).

Part of ``python -m bench.placement`` (``--skip-api`` leaves it out). The database's
public schema is DROPPED and recreated, migrated, and seeded with the demo regions and
GPU catalog, one fleet of ``nodes`` x 8 H100 in ca-qc-1 (inserted in bulk) and
``orgs`` organizations, each with a project, a member API key and a quota of the whole
fleet. The real server (``control_plane.asgi:app`` under uvicorn, one process, the
reconciler off so only the API's path is measured) then receives ``POST
/api/v1/orgs/{org}/tenancies`` (kind slurm, region ca-qc-1, gpu_model h100, 1 or 2 GPUs,
organizations in turn) from ``concurrency`` clients that each send their next request
as soon as the last is answered, until ``requests`` were sent, the GPUs asked for would
pass 90 % of the fleet, or the time budget is spent (quick: 45 s, full: 300 s; no request
is sent after it, those under way are awaited). Every answer is timed; a few unmeasured
creates warm the server up first.

Afterwards the database is checked: no GPU is held twice, each GPU's claim equals its
live allocations, and the tenancies holding GPUs are exactly those answered 201 (with
the GPU counts the answers gave).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bench.api import DEFAULT_PG_URL
from bench.common import (
    load_average,
    log,
    percentile,
    process_cpu_seconds,
    reset_postgres_schema,
    serve_asgi,
)
from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.migrate import upgrade
from control_plane.identity.models import ApiKey, Membership, Organization, Project, User
from control_plane.identity.roles import TENANT_GRANTS, TenantRole
from control_plane.identity.secrets import new_api_key, token_digest
from control_plane.ids import new_id
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.models import Gpu, Node
from control_plane.seed.demo import seed_catalog
from control_plane.tenancies.models import GpuAllocation, GpuClaim, GpuQuota, Tenancy

REGION = "ca-qc-1"
SITE = "qc-mtl-1"
GPU_MODEL = "h100"
GPUS_PER_NODE = 8
NODES_PER_RACK = 4
FILL_LIMIT = 0.9  # stop sending once the GPUs asked for would pass this share of the fleet
WARMUP_REQUESTS = 16
CLIENT_TIMEOUT = 300.0  # seconds; a create waits for each claim it loses, so it can be slow

__all__ = ["DEFAULT_PG_URL", "api_creates"]


@dataclass(frozen=True)
class Plan:
    nodes: int
    orgs: int
    concurrency: int
    requests: int
    max_seconds: float  # no request is sent after this (the quick run's time budget)


QUICK = Plan(nodes=500, orgs=8, concurrency=16, requests=400, max_seconds=45)
FULL = Plan(nodes=500, orgs=8, concurrency=16, requests=3_000, max_seconds=300)


class BenchmarkError(RuntimeError):
    """The server did not answer what the benchmark asks for; the numbers would lie."""


@dataclass(frozen=True)
class Tenant:
    org_id: str
    api_key: str


# --- preparing the database -------------------------------------------------------------


async def _seed(url: str, plan: Plan) -> list[Tenant]:
    engine = make_engine(url)
    clock = Clock()
    try:
        async with make_sessionmaker(engine)() as db:
            await seed_catalog(db, clock)
            await _fleet(db, clock, plan.nodes)
            tenants = [
                await _tenant(db, clock, i, plan.nodes * GPUS_PER_NODE) for i in range(plan.orgs)
            ]
            await db.commit()
            # Planner statistics, as a database that has been running has them.
            await db.execute(text("ANALYZE"))
            await db.commit()
    finally:
        await engine.dispose()
    return tenants


async def _fleet(db: AsyncSession, clock: Clock, count: int) -> None:
    """``count`` available 8x H100 NVLink nodes in one site, in two bulk inserts."""
    now = clock.now()
    nodes: list[dict[str, Any]] = []
    gpus: list[dict[str, Any]] = []
    for n in range(count):
        hostname = f"bench-h100-{n:04d}"
        node_id = new_id("node")
        nodes.append(
            {
                "id": node_id,
                "hostname": hostname,
                "region_code": REGION,
                "site_code": SITE,
                "rack": f"bench-r{n // NODES_PER_RACK:03d}",
                "bmc_endpoint": f"https://bmc-{hostname}.{SITE}.internal",
                "gpu_model_code": GPU_MODEL,
                "gpu_count": GPUS_PER_NODE,
                "firmware_version": "96.00.89.00.01",
                "driver_version": "550.127.08",
                "state": NodeState.AVAILABLE.value,
                "state_changed_at": now,
                "created_at": now,
            }
        )
        gpus += [
            {
                "id": new_id("gpu"),
                "node_id": node_id,
                "uuid": f"GPU-{hostname}-{index}",
                "index": index,
                "model_code": GPU_MODEL,
                "nvlink_domain": f"{hostname}-nvl",
            }
            for index in range(GPUS_PER_NODE)
        ]
    await db.execute(insert(Node), nodes)
    await db.execute(insert(Gpu), gpus)


async def _tenant(db: AsyncSession, clock: Clock, i: int, max_gpus: int) -> Tenant:
    """An organization with a member, a project, a member API key and a quota of the
    whole fleet (so the quota rule is checked, never binding)."""
    now = clock.now()
    org = Organization(id=new_id("org"), slug=f"bench-{i}", name=f"Bench {i}", created_at=now)
    user = User(
        id=new_id("usr"),
        email=f"bench-{i}@bench.example",
        name=f"Bench {i}",
        password_hash=None,
        is_active=True,
        failed_logins=0,
        created_at=now,
    )
    project = Project(
        id=new_id("prj"),
        org_id=org.id,
        slug="default",
        name="Default",
        description="",
        created_at=now,
    )
    db.add_all([org, user])
    await db.flush()
    db.add(
        Membership(
            id=new_id("mem"), org_id=org.id, user_id=user.id, role=TenantRole.MEMBER, created_at=now
        )
    )
    db.add(project)
    db.add(
        GpuQuota(
            id=new_id("quo"),
            org_id=org.id,
            region_code="*",
            gpu_model_code="*",
            max_gpus=max_gpus,
            updated_at=now,
        )
    )
    await db.flush()
    prefix, secret = new_api_key()
    db.add(
        ApiKey(
            id=new_id("key"),
            org_id=org.id,
            project_id=project.id,
            name="bench",
            prefix=prefix,
            secret_hash=token_digest(secret),
            role=TenantRole.MEMBER,
            scopes=sorted(TENANT_GRANTS[TenantRole.MEMBER]),
            created_by=user.id,
            created_at=now,
            expires_at=now + timedelta(days=1),
        )
    )
    await db.flush()
    return Tenant(org.id, secret)


# --- load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    # tenancy id -> GPUs, from the 201 answers (warm-up included)
    created: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sent: int = 0
    # names of requests that got no answer (their tenancy may exist all the same)
    unanswered: set[str] = field(default_factory=set)


def request_sizes(plan: Plan, seed: int = 42) -> list[int]:
    """GPUs per request (1 or 2, seeded), cut where the fleet would pass 90 % asked."""
    rng = random.Random(seed)  # a seeded workload
    budget = FILL_LIMIT * plan.nodes * GPUS_PER_NODE - 2 * WARMUP_REQUESTS
    sizes: list[int] = []
    while len(sizes) < plan.requests:
        size = rng.choice((1, 2))
        if sum(sizes) + size > budget:
            break
        sizes.append(size)
    return sizes


async def _load(
    base_url: str,
    tenants: list[Tenant],
    sizes: list[int],
    concurrency: int,
    tally: Tally,
    label: str,
    record: bool,
    max_seconds: float | None = None,
) -> float:
    """Send one create per size from ``concurrency`` closed-loop clients, none after
    ``max_seconds``; seconds taken until the last answer."""
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for i, size in enumerate(sizes):
        queue.put_nowait((i, size))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while max_seconds is None or time.perf_counter() - started < max_seconds:
            try:
                i, size = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            tally.sent += 1 if record else 0
            tenant = tenants[i % len(tenants)]
            body = {
                "name": f"{label}-{i}",
                "kind": "slurm",
                "region": REGION,
                "gpu_model": GPU_MODEL,
                "gpus_per_node": size,
            }
            sent = time.perf_counter()
            try:
                response = await client.post(
                    f"/api/v1/orgs/{tenant.org_id}/tenancies",
                    json=body,
                    headers={"Authorization": f"Bearer {tenant.api_key}"},
                )
            except httpx.TransportError as exc:
                tally.unanswered.add(str(body["name"]))
                tally.statuses[0] += 1 if record else 0
                tally.problems.append(f"no answer: {type(exc).__name__}")
                continue
            latency = time.perf_counter() - sent
            if record:
                tally.latencies.append(latency)
                tally.statuses[response.status_code] += 1
            if response.status_code == 201:
                answer = response.json()
                tally.created[answer["id"]] = answer["gpu_count"]
            elif len(tally.problems) < 5:
                tally.problems.append(f"{response.status_code}: {response.text[:300]}")

    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=CLIENT_TIMEOUT
    ) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        return time.perf_counter() - started


# --- checking the database afterwards -------------------------------------------------------


async def _consistency(url: str, created: dict[str, int], unanswered: set[str]) -> dict[str, Any]:
    engine = make_engine(url)
    live = GpuAllocation.released_at.is_(None)
    try:
        async with make_sessionmaker(engine)() as db:
            per_gpu = (
                select(GpuAllocation.gpu_id, func.sum(GpuAllocation.milli).label("milli"))
                .where(live)
                .group_by(GpuAllocation.gpu_id)
                .subquery()
            )
            overgiven = (
                await db.execute(
                    select(func.count()).select_from(per_gpu).where(per_gpu.c.milli > 1000)
                )
            ).scalar_one()
            claim_mismatch = (
                await db.execute(
                    select(func.count())
                    .select_from(GpuClaim)
                    .outerjoin(per_gpu, per_gpu.c.gpu_id == GpuClaim.gpu_id)
                    .where(GpuClaim.used_milli != func.coalesce(per_gpu.c.milli, 0))
                )
            ).scalar_one()
            unclaimed = (
                await db.execute(
                    select(func.count())
                    .select_from(per_gpu)
                    .outerjoin(GpuClaim, GpuClaim.gpu_id == per_gpu.c.gpu_id)
                    .where(GpuClaim.gpu_id.is_(None))
                )
            ).scalar_one()
            holding = dict(
                (
                    await db.execute(
                        select(GpuAllocation.tenancy_id, func.count())
                        .where(live)
                        .group_by(GpuAllocation.tenancy_id)
                    )
                ).all()
            )
            names = dict((await db.execute(select(Tenancy.id, Tenancy.name))).all())
    finally:
        await engine.dispose()
    # A request that got no answer may have created its tenancy: it is allowed, not counted.
    unknown = {t for t, name in names.items() if name in unanswered}
    holding_known = {t: n for t, n in holding.items() if t not in unknown}
    consistent = (
        overgiven == 0
        and claim_mismatch == 0
        and unclaimed == 0
        and holding_known == created
        and set(names) - unknown == set(created)
    )
    return {
        "consistent": consistent,
        "gpus_held_twice": overgiven,
        "claims_not_matching_allocations": claim_mismatch + unclaimed,
        "tenancies_answered_201": len(created),
        "tenancies_holding_gpus": len(holding),
        "tenancies_in_db": len(names),
        "tenancies_of_unanswered_requests": len(unknown),
        "live_allocations": sum(holding.values()),
        "gpus_answered_201": sum(created.values()),
    }


# --- the measurement ----------------------------------------------------------------------


def api_creates(url: str, quick: bool) -> dict[str, Any]:
    """Reset ``url`` (PostgreSQL), seed it, serve the API and measure tenancy creates."""
    if not url.startswith(("postgresql", "postgres")):
        raise BenchmarkError(f"the API creates benchmark runs on PostgreSQL, not {url!r}")
    plan = QUICK if quick else FULL
    shown = make_url(url).render_as_string(hide_password=True)
    log(
        f"api creates: resetting {shown}; {plan.nodes} nodes x {GPUS_PER_NODE} GPUs, "
        f"{plan.orgs} orgs"
    )
    t0 = time.perf_counter()
    asyncio.run(reset_postgres_schema(url))
    upgrade(url)
    tenants = asyncio.run(_seed(url, plan))
    prepare_s = time.perf_counter() - t0
    sizes = request_sizes(plan)
    warmup = [1, 2] * (WARMUP_REQUESTS // 2)
    tally = Tally()
    env = {"CP_DATABASE_URL": url, "CP_LOG_LEVEL": "WARNING", "CP_RECONCILER_ENABLED": "false"}
    with serve_asgi("control_plane.asgi:app", env=env) as server:
        asyncio.run(_load(server.base_url, tenants, warmup, plan.concurrency, tally, "warm", False))
        if len(tally.created) != len(warmup):
            raise BenchmarkError(f"warm-up creates failed: {tally.problems}")
        log(f"api creates: {len(sizes)} creates at {plan.concurrency} clients ...")
        load_before = load_average()
        cpu_before = process_cpu_seconds(server.pid)
        seconds = asyncio.run(
            _load(
                server.base_url,
                tenants,
                sizes,
                plan.concurrency,
                tally,
                "bench",
                True,
                plan.max_seconds,
            )
        )
        cpu_after = process_cpu_seconds(server.pid)
        load_after = load_average()
    checked = asyncio.run(_consistency(url, tally.created, tally.unanswered))
    ok = tally.statuses.get(201, 0)
    errors = sum(n for status, n in tally.statuses.items() if status != 201)
    server_cpu_ms = (
        None
        if cpu_before is None or cpu_after is None or not tally.sent
        else round(1000 * (cpu_after - cpu_before) / tally.sent, 2)
    )
    return {
        "api_creates_per_s": round(ok / seconds, 1),
        "api_create_p50_ms": round(percentile(tally.latencies, 50) * 1000, 1),
        "api_create_p99_ms": round(percentile(tally.latencies, 99) * 1000, 1),
        # (non-201 answers and requests without an answer, status 0)
        "api_create_errors": errors,
        "api_creates_consistent": checked["consistent"],
        "api_creates": {
            "request": f"POST /api/v1/orgs/{{org}}/tenancies (API key; kind slurm, {REGION}, "
            f"{GPU_MODEL}, 1 or 2 GPUs)",
            "database": shown,
            "nodes": plan.nodes,
            "gpus": plan.nodes * GPUS_PER_NODE,
            "orgs": plan.orgs,
            "concurrency": plan.concurrency,
            "requests": tally.sent,
            "requests_planned": len(sizes),
            "stopped_by": "requests" if tally.sent == len(sizes) else "time budget",
            "max_seconds": plan.max_seconds,
            "gpus_requested": sum(sizes[: tally.sent]),
            "warmup_requests": len(warmup),
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "first_problems": tally.problems[:5],
            "max_ms": round(max(tally.latencies, default=0.0) * 1000, 1),
            "seconds": round(seconds, 2),
            "server_cpu_ms_per_create": server_cpu_ms,
            "prepare_s": round(prepare_s, 1),
            "reconciler": "off",
            "check": checked,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "note": "client, server and PostgreSQL share the same cores",
        },
    }
