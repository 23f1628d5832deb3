"""GPU telemetry and waste analysis on PostgreSQL: sample ingest, the analysis over a month
of hourly rollups, and the accuracy of the waste rules on a fleet with planted waste.

    python -m bench.telemetry [--quick] --json FILE [--pg-url URL]

1. Ingest (``ingest_samples_per_s``): one process sends batches as node agents do: each
   batch is one node's 8 GPUs over 600 one-second ticks (4,800 samples, the agent's spool
   flushing a backlog; agents cap batches at 5,000), as JSON bytes decoded with msgspec
   into the API's request type, then ``control_plane.telemetry.ingest.ingest_batch``
   (every sample checked against the node's GPUs and the clock, the batch id recorded,
   samples stored once per GPU and second, the hours they touch marked for the rollup),
   one transaction per batch. One batch in twenty is a retry of an earlier one (counted,
   stored once). ``ingest_small_batches_samples_per_s`` is the same with the default
   agent's batch (8 GPUs x 6 ticks = 48 samples a minute).
2. Analysis (``analysis_s``): GPUS GPUs x DAYS days of hourly rollups (``analysis_rows``;
   7.2 million for the full run's 10,000 GPUs x 30 days) from the planted fleet
   (``control_plane.insights.fleetgen``), with its tenancies, endpoints, endpoint token
   usage, organizations and price book in the database. Timed:
   ``control_plane.insights.analysis.analyze`` (the per-GPU aggregate over the rollups, the
   organizations' prices, every rule) and storing the recommendations, committed.
3. Accuracy (``rules``): the stored findings against the planted labels, per rule:
   precision, recall, planted and found.

Goals (from the issue): >= 50,000 samples/s ingested, the analysis of 10,000 GPUs x 30
days <= 30 s, precision and recall >= 0.95 for every rule. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import text

from bench.common import load_average, log, machine_info, parse_args, reset_postgres_schema
from bench.common import write_json as write_result

GOALS = {"ingest_samples_per_s_min": 50_000, "analysis_s_max": 30.0, "precision_min": 0.95,
         "recall_min": 0.95}  # fmt: skip
GPUS_PER_NODE = 8
TICKS = 600
SMALL_TICKS = 6
RETRY_EVERY = 20
REGION = "ca-qc-1"


@dataclass(frozen=True)
class Plan:
    ingest_seconds: float
    nodes: int
    gpus: int
    days: int


FULL = Plan(ingest_seconds=60.0, nodes=2_000, gpus=10_000, days=30)
QUICK = Plan(ingest_seconds=12.0, nodes=300, gpus=1_500, days=14)
# fleetgen's cards -> the catalog's codes (L4 is added to the catalog for the run).
MODELS = {"H100-80GB": "h100", "A100-80GB": "a100", "L40S": "l40s", "L4": "l4"}


class BenchmarkError(RuntimeError):
    pass


async def _setup(url: str, nodes: int) -> None:
    """Empty schema at head, the demo catalog plus an L4, ``nodes`` 8-GPU H100 nodes."""
    from control_plane.clock import Clock
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.db.migrate import upgrade
    from control_plane.seed.demo import seed_catalog

    await reset_postgres_schema(url)
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            await seed_catalog(db, Clock())
            await db.execute(text("""
                INSERT INTO gpu_model (code, name, vendor, generation, memory_gib, tdp_watts,
                                       interconnect, mig_profiles)
                VALUES ('l4', 'NVIDIA L4 24GB', 'NVIDIA', 'Ada Lovelace', 24, 72, 'PCIe 4',
                        '[]')
            """))  # fmt: skip
            await db.execute(text("""
                INSERT INTO node (id, hostname, region_code, site_code, rack, bmc_endpoint,
                    gpu_model_code, gpu_count, firmware_version, driver_version, state,
                    state_changed_at, created_at)
                SELECT 'node_b' || n, 'bench-' || n, :region, 'qc-mtl-1', 'r' || (n / 16),
                       'https://bmc-' || n, 'h100', 8, '1', '550', 'available', now(), now()
                FROM generate_series(0, :nodes - 1) AS n
            """), {"region": REGION, "nodes": nodes})  # fmt: skip
            await db.execute(text("""
                INSERT INTO gpu (id, node_id, uuid, index, model_code, nvlink_domain)
                SELECT 'gpu_b' || n || '_' || g, 'node_b' || n, 'GPU-b' || n || '-' || g, g,
                       'h100', NULL
                FROM generate_series(0, :nodes - 1) AS n, generate_series(0, 7) AS g
            """), {"nodes": nodes})  # fmt: skip
            await db.commit()
    finally:
        await engine.dispose()


# --- 1. ingest -------------------------------------------------------------------------


def _batch(node: int, start: datetime, ticks: int, rng: random.Random) -> dict[str, Any]:
    samples = []
    for t in range(ticks):
        at = (start + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for g in range(GPUS_PER_NODE):
            util = rng.randrange(101)
            samples.append({
                "at": at, "gpu_uuid": f"GPU-b{node}-{g}", "index": g, "sm_util_pct": util,
                "mem_util_pct": util // 2, "mem_used_mib": 20_000 + util * 100,
                "mem_total_mib": 81_559, "power_w": 80.0 + 6.2 * util, "temp_c": 40 + util // 4,
                "sm_clock_mhz": 1_980, "mem_clock_mhz": 2_619, "ecc_corrected": 0,
                "ecc_uncorrected": 0,
                "processes": [{"pid": 4_000 + g, "name": "python", "used_mib": 20_000}],
            })  # fmt: skip
    return {"batch_id": f"{start:%Y%m%d%H%M%S}-{node}", "agent_version": "bench",
            "samples": samples}  # fmt: skip


async def bench_ingest(url: str, seconds: float, nodes: int, ticks: int) -> dict[str, Any]:
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.telemetry.ingest import ingest_batch
    from control_plane.telemetry.schemas import BatchIn

    rng = random.Random(11)
    decoder = msgspec.json.Decoder(BatchIn)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    oldest = now - timedelta(hours=70)
    handled = stored = batches = retried = 0
    busy = 0.0
    sent: list[tuple[str, bytes]] = []
    cursor = 0
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            if sent and batches % RETRY_EVERY == RETRY_EVERY - 1:
                node_id, body = sent[rng.randrange(len(sent))]  # an agent retrying a batch
                retried += 1
            else:
                node, step = cursor % nodes, cursor // nodes
                start = oldest + timedelta(seconds=step * ticks)
                if start + timedelta(seconds=ticks) > now:
                    raise BenchmarkError("ran out of distinct sample times; lower the rate")
                node_id = f"node_b{node}"
                body = msgspec.json.encode(_batch(node, start, ticks, rng))  # not timed
                cursor += 1
                if len(sent) < 50:
                    sent.append((node_id, body))
            t0 = time.perf_counter()
            batch = decoder.decode(body)
            async with sessionmaker() as db:
                result = await ingest_batch(db, node_id, batch, now, timedelta(hours=72))
                await db.commit()
            busy += time.perf_counter() - t0
            handled += len(batch.samples)
            stored += result.accepted
            batches += 1
    finally:
        await engine.dispose()
    if retried and stored >= handled:
        raise BenchmarkError("a retried batch was stored again")
    return {"samples_per_s": round(handled / busy), "stored_per_s": round(stored / busy),
            "samples": handled, "batches": batches, "retried_batches": retried,
            "batch_size": GPUS_PER_NODE * ticks}  # fmt: skip


# --- 2. analysis -----------------------------------------------------------------------


async def _load_fleet(url: str, fleet: Any) -> int:
    """The planted fleet as the control plane would hold it; returns the rollup rows."""
    from control_plane.db.engine import make_engine
    from control_plane.insights.fleetgen import CATALOG

    engine = make_engine(url)
    created = fleet.start - timedelta(days=1)
    try:
        async with engine.connect() as conn:
            orgs = sorted({t.org_id for t in fleet.tenancies} | {e.org_id for e in fleet.endpoints})
            for org in orgs:
                await conn.execute(text(
                    "INSERT INTO organization (id, slug, name, created_at) "
                    "VALUES (:id, :id, :id, now())"), {"id": org})  # fmt: skip
            for code in MODELS.values():  # one node of each card: the region offers them
                await conn.execute(text("""
                    INSERT INTO node (id, hostname, region_code, site_code, rack, bmc_endpoint,
                        gpu_model_code, gpu_count, firmware_version, driver_version, state,
                        state_changed_at, created_at)
                    VALUES ('node_' || :m, 'offer-' || :m, :region, 'qc-mtl-1', 'r', 'x', :m,
                            8, '1', '550', 'available', now(), now())
                """), {"m": code, "region": REGION})  # fmt: skip
            book = f"pbk_{uuid.uuid4().hex[:20]}"
            await conn.execute(text("""
                INSERT INTO price_book (id, region_code, currency, version, effective_from,
                    timezone, night_start_hour, night_end_hour, note, created_at, created_by)
                VALUES (:id, :region, 'CAD', 1, :since, 'America/Toronto', 0, 0, 'bench',
                        now(), 'bench')
            """), {"id": book, "region": REGION,
                   "since": created - timedelta(days=30)})  # fmt: skip
            for name, model in CATALOG.items():
                await conn.execute(text("""
                    INSERT INTO price_rate (id, book_id, usage_type, gpu_model, tenancy_kind,
                        model, unit_price, night_unit_price, minimum_seconds)
                    VALUES (:id, :book, 'gpu_seconds', :gpu, '', '', :price, NULL, 0)
                """), {"id": f"prr_{uuid.uuid4().hex[:20]}", "book": book,
                       "gpu": MODELS[name], "price": model.price})  # fmt: skip
            await conn.commit()
            raw = await conn.get_raw_connection()
            pg: Any = raw.driver_connection
            for table, columns, records in (
                ("tenancy", _TENANCY_COLUMNS, _tenancy_records(fleet, created)),
                ("endpoint", _ENDPOINT_COLUMNS, _endpoint_records(fleet, created)),
                ("usage_hourly", _USAGE_COLUMNS, _usage_records(fleet)),
            ):
                await pg.copy_records_to_table(table, columns=columns, records=list(records))
            rows = 0
            for chunk in _chunks(_hour_records(fleet), 250_000):
                await pg.copy_records_to_table("gpu_hour", columns=_HOUR_COLUMNS, records=chunk)
                rows += len(chunk)
            await conn.execute(text("ANALYZE"))
            await conn.commit()
            return rows
    finally:
        await engine.dispose()


_TENANCY_COLUMNS = [
    "id", "org_id", "project_id", "name", "labels", "kind", "region_code", "gpu_model_code",
    "shape", "node_count", "gpus_per_node", "gpu_milli", "image", "ssh_public_keys", "state",
    "driver", "simulated", "facts", "generation", "applied_generation", "attempts",
    "created_by", "created_at", "state_changed_at", "activated_at", "expiry_warned",
    "managed_by", "workload",
]  # fmt: skip
_ENDPOINT_COLUMNS = [
    "id", "org_id", "name", "region_code", "backend", "gpu_model_code", "gpus_per_replica",
    "gpu_milli", "min_replicas", "max_replicas", "desired_replicas", "target_tokens_per_s",
    "target_queue_per_replica", "created_by", "created_at", "updated_at",
]  # fmt: skip
_USAGE_COLUMNS = ["key", "org_id", "project_id", "type", "hour", "region", "gpu_model",
                  "tenancy_kind", "tenancy", "endpoint", "model", "value", "events"]  # fmt: skip
_HOUR_COLUMNS = [
    "gpu_id", "hour", "tenancy_id", "node_id", "region_code", "gpu_model_code", "local_hour",
    "org_id", "endpoint_id", "share_milli", "samples", "util_mean", "util_p95", "util_max",
    "mem_mean_mib", "mem_p95_mib", "mem_max_mib", "mem_total_mib", "power_mean_w", "energy_wh",
    "proc_max", "ecc_errors",
]  # fmt: skip


def _tenancy_records(fleet: Any, created: datetime) -> Iterator[tuple[Any, ...]]:
    for t in fleet.tenancies:
        owner = f"endpoint:{t.endpoint_id}" if t.endpoint_id else None
        yield (t.tenancy_id, t.org_id, None, t.name[:63], "{}", t.kind, REGION,
               MODELS[t.gpu_model], None, t.node_count, t.gpus_per_node, t.gpu_milli, None,
               "[]", "active", "sim", True, "{}", 1, 1, 0, "bench", created, created, created,
               False, owner, "{}")  # fmt: skip


def _endpoint_records(fleet: Any, created: datetime) -> Iterator[tuple[Any, ...]]:
    for e in fleet.endpoints:
        yield (e.endpoint_id, e.org_id, e.name[:63], REGION, "python", MODELS[e.gpu_model], 1,
               1000, e.min_replicas, e.max_replicas, e.replicas, e.target_tokens_per_s, 4,
               "bench", created, created)  # fmt: skip


def _usage_records(fleet: Any) -> Iterator[tuple[Any, ...]]:
    for e in fleet.endpoints:
        for hour, tokens in zip(fleet.hour_starts, e.tokens_per_s, strict=True):
            if tokens > 0:
                yield (uuid.uuid4().hex, e.org_id, "", "tokens_out", hour, REGION, "", "", "",
                       e.endpoint_id, "chat", Decimal(round(tokens * 3600)), 1)  # fmt: skip


def _hour_records(fleet: Any) -> Iterator[tuple[Any, ...]]:
    owners = {t.tenancy_id: (t.org_id, t.endpoint_id, MODELS[t.gpu_model], t.gpu_milli)
              for t in fleet.tenancies}  # fmt: skip
    for r in fleet.rows():
        org, endpoint, model, milli = owners[r.tenancy_id]
        yield (r.gpu_id, r.hour, r.tenancy_id, "node_x", REGION, model, r.local_hour, org,
               endpoint, milli, r.samples, r.util_mean, r.util_p95, r.util_max,
               r.mem_mean_mib, r.mem_max_mib, r.mem_max_mib, r.mem_total_mib, r.power_mean_w,
               r.energy_wh, r.proc_max, 0)  # fmt: skip


def _chunks(records: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def bench_analysis(url: str, gpus: int, days: int) -> dict[str, Any]:
    from billing.prices.gpu_prices import GpuHourPrices
    from control_plane.clock import Clock
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.insights.accuracy import score
    from control_plane.insights.analysis import analyze
    from control_plane.insights.features import Thresholds
    from control_plane.insights.fleetgen import generate
    from control_plane.insights.store import save_findings

    t0 = time.perf_counter()
    fleet = generate(gpus=gpus, days=days, seed=3)
    rows = await _load_fleet(url, fleet)
    log(f"  loaded {rows:,} hourly rows in {time.perf_counter() - t0:.0f} s")
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            started = time.perf_counter()
            result = await analyze(db, GpuHourPrices(Clock()), fleet.start, fleet.end,
                                   Thresholds())  # fmt: skip
            await save_findings(db, result.findings, None, datetime.now(UTC))
            await db.commit()
            elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    rules = score(result.findings, fleet)
    return {
        "analysis_s": round(elapsed, 2),
        "analysis_rows": rows,
        "analysis_gpus": fleet.gpu_count,
        "analysis_days": days,
        "analysis_tenancies": result.tenancies,
        "analysis_endpoints": result.endpoints,
        "analysis_findings": len(result.findings),
        "rules": {name: {"precision": round(s["precision"], 4), "recall": round(s["recall"], 4),
                         "planted": s["planted"], "found": s["found"]}
                  for name, s in rules.items()},
    }  # fmt: skip


# --- report ----------------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-url",
        default=None,
        help="PostgreSQL database whose public schema the benchmark drops and rebuilds "
        "(default: CP_BENCH_DATABASE_URL)",
    )


def print_table(result: dict[str, Any]) -> None:
    print(f"ingest            {result['ingest_samples_per_s']:>10,} samples/s "
          f"(batches of {result['ingest_batch_size']:,}; goal >= 50,000)")  # fmt: skip
    print(f"ingest, 48/batch  {result['ingest_small_batches_samples_per_s']:>10,} samples/s")
    print(f"analysis          {result['analysis_s']:>10.2f} s for {result['analysis_gpus']:,} "
          f"GPUs x {result['analysis_days']} days ({result['analysis_rows']:,} rows; "
          "goal <= 30 s)")  # fmt: skip
    for rule, s in result["rules"].items():
        print(f"  {rule:<26} precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
              f"({s['found']} found / {s['planted']} planted)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    import os

    args = parse_args("GPU telemetry ingest, waste analysis and rule accuracy.", argv, _options)
    url = args.pg_url or os.environ.get("CP_BENCH_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        log(
            "bench.telemetry needs a PostgreSQL database whose public schema it may drop: "
            "pass --pg-url postgresql://USER@HOST:PORT/DB or set CP_BENCH_DATABASE_URL"
        )
        return 2
    plan = QUICK if args.quick else FULL
    started_load = load_average()
    try:
        log(f"setting up ({plan.nodes:,} nodes of 8 GPUs)")
        asyncio.run(_setup(url, plan.nodes))
        log(f"ingest: {plan.ingest_seconds:.0f} s of batches of {GPUS_PER_NODE * TICKS:,}")
        big = asyncio.run(bench_ingest(url, plan.ingest_seconds, plan.nodes, TICKS))
        asyncio.run(_setup(url, plan.nodes))
        log(f"ingest: {plan.ingest_seconds / 3:.0f} s of batches of "
            f"{GPUS_PER_NODE * SMALL_TICKS}")  # fmt: skip
        small = asyncio.run(bench_ingest(url, plan.ingest_seconds / 3, plan.nodes,
                                         SMALL_TICKS))  # fmt: skip
        asyncio.run(_setup(url, 0))
        log(f"analysis: {plan.gpus:,} GPUs x {plan.days} days")
        analysis = asyncio.run(bench_analysis(url, plan.gpus, plan.days))
    except BenchmarkError as exc:
        log(f"telemetry benchmark failed: {exc}")
        return 1
    rules_ok = all(s["precision"] >= GOALS["precision_min"] and s["recall"] >= GOALS["recall_min"]
                   for s in analysis["rules"].values())  # fmt: skip
    result = {
        "benchmark": "telemetry",
        "quick": args.quick,
        "ingest_samples_per_s": big["samples_per_s"],
        "ingest_stored_per_s": big["stored_per_s"],
        "ingest_samples": big["samples"],
        "ingest_batches": big["batches"],
        "ingest_retried_batches": big["retried_batches"],
        "ingest_batch_size": big["batch_size"],
        "ingest_small_batches_samples_per_s": small["samples_per_s"],
        **analysis,
        "goals": GOALS,
        "goals_met": {
            "ingest": big["samples_per_s"] >= GOALS["ingest_samples_per_s_min"],
            "analysis": analysis["analysis_s"] <= GOALS["analysis_s_max"],
            "rules": rules_ok,
        },
        "machine": {**machine_info(), "load_average_at_start": started_load,
                    "note": "the benchmark, PostgreSQL and other jobs share the same cores"},
    }  # fmt: skip
    write_result(args.json, result)
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
