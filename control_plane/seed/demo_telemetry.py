"""Demo GPU telemetry: a few simulated tenancies of the demo organization in ca-qc-1, seven
days of their GPUs' samples sent through the node agents' ingest path, rolled up, and one
waste analysis priced with the demo price book, so the waste dashboard and its advice are
there on the first ``make run`` (and applying advice really resizes or releases them).

Each tenancy shows one pattern: a 4-GPU training job using 2 GPUs, a notebook idle for
days, a lease with nothing running, a small evaluation on an H100 an L40S would carry, a
batch job idle every night, and a healthy training job (no advice)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.identity.models import Organization
from control_plane.ids import new_id
from control_plane.insights.analysis import GpuPricer
from control_plane.insights.service import run_analysis
from control_plane.inventory.models import Gpu, Node
from control_plane.settings import Settings
from control_plane.telemetry.ingest import ingest_batch
from control_plane.telemetry.schemas import BatchIn, ProcessIn, SampleIn
from control_plane.telemetry.tasks import roll_up_all
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.models import GpuAllocation, GpuClaim, Tenancy
from control_plane.tenancies.reads import allocation_of

__all__ = ["seed_demo_telemetry"]

REGION = "ca-qc-1"
DAYS = 7
STEP = timedelta(minutes=15)
ZONE = ZoneInfo("America/Toronto")
# (util %, memory MiB, processes) of one GPU at a time, given (GPU index, local hour, days ago)
Pattern = Callable[[random.Random, int, int, float], tuple[int, int, int]]


def _train(rng: random.Random, gpu: int, hour: int, days_ago: float) -> tuple[int, int, int]:
    return rng.randint(78, 97), rng.randint(60_000, 70_000), 1


def _half_used(rng: random.Random, gpu: int, hour: int, days_ago: float) -> tuple[int, int, int]:
    if gpu < 2:
        return _train(rng, gpu, hour, days_ago)
    return rng.randint(0, 2), 520, 1  # the data loader's process pinned, nothing computing


def _notebook(rng: random.Random, gpu: int, hour: int, days_ago: float) -> tuple[int, int, int]:
    if days_ago > 5 and 9 <= hour < 18:
        return rng.randint(30, 70), 14_000, 1
    return rng.randint(0, 1), 14_000, 1  # the kernel still holds its tensors


def _empty(rng: random.Random, gpu: int, hour: int, days_ago: float) -> tuple[int, int, int]:
    return 0, 0, 0


def _small_eval(rng: random.Random, gpu: int, hour: int, days_ago: float) -> tuple[int, int, int]:
    return rng.randint(18, 34), rng.randint(8_000, 10_500), 1


def _nightly(rng: random.Random, gpu: int, hour: int, days_ago: float) -> tuple[int, int, int]:
    if 8 <= hour < 20:
        return rng.randint(55, 85), 40_000, 1
    return rng.randint(0, 1), 300, 0


@dataclass(frozen=True)
class DemoTenancy:
    name: str
    model: str
    gpus: int
    pattern: Pattern


TENANCIES = (
    DemoTenancy("llm-pretrain", "h100", 4, _half_used),
    DemoTenancy("notebook-alice", "h100", 1, _notebook),
    DemoTenancy("forgotten-lease", "l40s", 1, _empty),
    DemoTenancy("eval-small", "h100", 1, _small_eval),
    DemoTenancy("nightly-etl", "h100", 2, _nightly),
    DemoTenancy("llm-finetune", "h100", 2, _train),
)


async def seed_demo_telemetry(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    pricer: GpuPricer,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> dict[str, int]:
    """Add the demo tenancies and their week of telemetry once; analyse every time."""
    added = {"tenancies": 0, "samples": 0, "recommendations": 0}
    drivers = Drivers(settings)
    if drivers.name_for(REGION, TenancyKind.SLURM) != "sim":
        return added  # a real Slurm in the demo region: no simulated tenancies there
    org = (await db.execute(select(Organization).where(Organization.slug == "demo"))).scalar_one()
    now = clock.now()
    start = (now - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    existing = set(
        (await db.execute(select(Tenancy.name).where(Tenancy.org_id == org.id))).scalars()
    )
    rng = random.Random(7)  # noqa: S311 - sample data
    for spec in TENANCIES:
        if spec.name in existing:
            continue
        placed = await _place(db, org.id, spec, start - timedelta(hours=1), now, drivers)
        if placed is None:
            continue
        node_id, gpus = placed
        added["tenancies"] += 1
        added["samples"] += await _samples(db, node_id, gpus, spec, start, now, rng)
    await db.commit()
    await roll_up_all(sessionmaker)
    result = await run_analysis(db, pricer, clock, settings, [org.id])
    added["recommendations"] = result.findings
    return added


async def _place(
    db: AsyncSession, org_id: str, spec: DemoTenancy, since: datetime, now: datetime,
    drivers: Drivers,
) -> tuple[str, list[Gpu]] | None:  # fmt: skip
    """An active simulated Slurm tenancy on free GPUs of one node (claimed and allocated as
    a create and the reconciler leave them), its simulated machine booted."""
    taken = set(
        (await db.execute(select(GpuClaim.gpu_id).where(GpuClaim.used_milli > 0))).scalars()
    )
    nodes = (await db.execute(
        select(Node).where(Node.region_code == REGION, Node.gpu_model_code == spec.model,
                           Node.state == "available").order_by(Node.hostname)
    )).scalars().all()  # fmt: skip
    for node in nodes:
        query = select(Gpu).where(Gpu.node_id == node.id).order_by(Gpu.index)
        gpus = (await db.execute(query)).scalars().all()
        free = [g for g in gpus if g.id not in taken][: spec.gpus]
        if len(free) == spec.gpus:
            break
    else:
        return None
    driver = drivers.for_tenancy(REGION, TenancyKind.SLURM)
    tenancy = Tenancy(
        id=new_id("ten"), org_id=org_id, project_id=None, name=spec.name,
        labels={"demo": "telemetry"}, kind="slurm", region_code=REGION,
        gpu_model_code=spec.model, shape=None, node_count=1, gpus_per_node=spec.gpus,
        gpu_milli=1000, image=None, ssh_public_keys=[], ends_at=None, idle_release_minutes=None,
        state="active", failure_reason=None, driver=driver.name, simulated=True, facts={},
        generation=1, applied_generation=1, lease_token=None, lease_expires_at=None,
        next_attempt_at=None, attempts=0, last_error=None, created_by="demo-seed",
        created_at=since, state_changed_at=since, activated_at=since, release_requested_at=None,
        released_at=None, accrued_until=now, idle_since=None, expiry_warned=False,
        stuck_since=None, managed_by=None, workload={},
    )  # fmt: skip
    db.add(tenancy)
    await db.flush()
    rows = []
    for g in free:
        db.add(GpuClaim(gpu_id=g.id, node_id=node.id, used_milli=1000))
        rows.append(GpuAllocation(id=new_id("gal"), tenancy_id=tenancy.id, node_id=node.id,
                                  gpu_id=g.id, gpu_index=g.index, milli=1000,
                                  allocated_at=since, released_at=None))  # fmt: skip
    db.add_all(rows)
    await db.flush()
    allocation = await allocation_of(db, tenancy, rows)
    for _ in range(20):  # boot the simulated machine as the reconciler would
        step = await driver.provision(allocation)
        if step.done:
            tenancy.facts = dict(step.facts)
            break
    return node.id, list(free)


async def _samples(
    db: AsyncSession, node_id: str, gpus: list[Gpu], spec: DemoTenancy, start: datetime,
    now: datetime, rng: random.Random,
) -> int:  # fmt: skip
    """The week as the node's agent would have sent it (through the same ingest)."""
    samples = []
    at = start
    while at < now - STEP:
        local = at.astimezone(ZONE)
        days_ago = (now - at).total_seconds() / 86400
        for gpu in gpus:
            util, mem, procs = spec.pattern(rng, gpu.index, local.hour, days_ago)
            samples.append(SampleIn(
                at=at, gpu_uuid=gpu.uuid, index=gpu.index, sm_util_pct=util,
                mem_util_pct=util // 2, mem_used_mib=mem,
                mem_total_mib=81_559 if spec.model == "h100" else 46_068,
                power_w=round((70 if spec.model == "h100" else 35) + util * 6.0, 1),
                temp_c=35 + util // 3, sm_clock_mhz=1_980 if util else 345, mem_clock_mhz=2_619,
                ecc_corrected=0, ecc_uncorrected=0,
                processes=[ProcessIn(pid=4_100 + p, name="python", used_mib=mem // max(procs, 1))
                           for p in range(procs)],
            ))  # fmt: skip
        at += STEP
    late = now - start + timedelta(hours=1)
    for i in range(0, len(samples), 4_000):
        batch = BatchIn(batch_id=f"demo-{spec.name}-{i}", samples=samples[i : i + 4_000])
        await ingest_batch(db, node_id, batch, now, late)
    return len(samples)
