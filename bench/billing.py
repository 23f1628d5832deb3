"""Metering and billing on PostgreSQL: ingest with de-duplication, a monthly invoice run
over every organization, and the usage query customers make.

    python -m bench.billing [--quick] --json FILE [--pg-url URL]

1. Ingest (``ingest_events_per_s``): one process sends batches of 5,000 events as a
   trusted source would: JSON bytes decoded with msgspec into the API's request type,
   then ``control_plane.metering.ingest.ingest`` (every event validated, organizations
   checked, stored once per (source, id), the hourly rollup and per-source counts kept
   in the same transaction), one transaction per batch. One event in ten re-sends an
   event already stored (a producer's retry): it is counted as a duplicate and stored
   once. The rate counts every event handled, duplicates included; ``ingest_stored_per_s``
   counts only the new ones. Events spread over 1,000 organizations and 4 dimension sets.
2. Invoice run (``invoice_run_s``): ORGS organizations with one month (720 hours) of
   hourly usage in 4 dimension sets (H100 bare metal, L40S VM, input and output tokens of
   one model): ORGS x 720 x 4 rows of the hourly rollup (``invoice_run_rows``; 28.8
   million for the full run's 10,000 organizations), generated inside PostgreSQL, then
   analyzed. Timed: ``billing.invoices.service.run`` for the month (read and sum the
   rollup per organization, dimension, price book version and day/night hour; rate every
   organization; write one draft with its lines per organization) and its commit.
3. Usage query (``usage_query_p50_ms``, ``usage_query_p99_ms``): over the same data,
   served by the control plane (uvicorn, one process), GET /api/v1/orgs/{org}/usage for
   the month by day grouped by GPU model, with an API key of one of 50 random
   organizations, QUERIES times one after another.

Goals (from the issue): >= 20,000 events/s ingested, the invoice run <= 60 s.
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import httpx
import msgspec
from sqlalchemy import text

from bench.common import (
    load_average,
    log,
    machine_info,
    parse_args,
    percentile,
    reset_postgres_schema,
    serve_asgi,
)
from bench.common import write_json as write_result

GOALS = {"ingest_events_per_s_min": 20_000, "invoice_run_s_max": 60.0}
BATCH = 5_000
INGEST_ORGS = 1_000
DUPLICATE_SHARE = 0.1
KEYS = 50
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 11, 1, tzinfo=UTC)


class Plan(TypedDict):
    ingest_seconds: float
    orgs: int
    queries: int


FULL: Plan = {"ingest_seconds": 60.0, "orgs": 10_000, "queries": 500}
QUICK: Plan = {"ingest_seconds": 15.0, "orgs": 300, "queries": 150}
DIMENSIONS = (  # usage type, GPU model, tenancy kind, tenancy, endpoint, model, value
    ("gpu_seconds", "h100", "bare_metal", "ten_a", "", "", 3600),
    ("gpu_seconds", "l40s", "vm", "ten_b", "", "", 1800),
    ("tokens_in", "", "", "", "ep_chat", "chat-v1", 120_000),
    ("tokens_out", "", "", "", "ep_chat", "chat-v1", 40_000),
)


class BenchmarkError(RuntimeError):
    pass


def _org_id(n: int) -> str:
    return f"org_bench{n:06d}"


async def _setup(url: str, orgs: int) -> None:
    """Empty schema at head, the demo catalog, ``orgs`` organizations with one project
    each, and ca-qc-1's price book."""
    from billing.prices.schemas import PriceBookCreate, RateIn
    from billing.prices.service import create_book
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
            await _add_orgs(db, 0, orgs)
            book = PriceBookCreate(
                effective_from=MONTH_START - timedelta(days=90),
                timezone="America/Toronto",
                night_start_hour=0,
                night_end_hour=6,
                rates=[
                    RateIn(
                        "gpu_seconds",
                        _d("4.00"),
                        gpu_model="h100",
                        night_unit_price=_d("2.50"),
                        minimum_seconds=60,
                    ),
                    RateIn("gpu_seconds", _d("1.20"), gpu_model="l40s", tenancy_kind="vm"),
                    RateIn("tokens_in", _d("0.20")),
                    RateIn("tokens_out", _d("0.60")),
                ],
            )
            await create_book(db, "ca-qc-1", book, actor="bench", now=datetime.now(UTC))
            await db.commit()
    finally:
        await engine.dispose()


def _d(text_value: str) -> Any:
    from decimal import Decimal

    return Decimal(text_value)


async def _add_orgs(db: Any, first: int, last: int) -> None:
    """Organizations [first, last) with one project each, made inside PostgreSQL."""
    await db.execute(
        text("""
        INSERT INTO organization (id, slug, name, created_at)
        SELECT 'org_bench' || lpad(n::text, 6, '0'), 'bench-' || n, 'Bench ' || n, now()
        FROM generate_series(:first, :last - 1) AS n
    """),
        {"first": first, "last": last},
    )
    await db.execute(
        text("""
        INSERT INTO project (id, org_id, slug, name, description, created_at)
        SELECT 'prj_bench' || lpad(n::text, 6, '0'), 'org_bench' || lpad(n::text, 6, '0'),
               'default', 'Default', '', now()
        FROM generate_series(:first, :last - 1) AS n
    """),
        {"first": first, "last": last},
    )


# --- 1. ingest -------------------------------------------------------------------------


def _event(n: int, at: datetime, rng: random.Random) -> dict[str, Any]:
    kind, gpu, tkind, tenancy, endpoint, model, value = DIMENSIONS[n % len(DIMENSIONS)]
    org = rng.randrange(INGEST_ORGS)
    dims = {
        k: v
        for k, v in (
            ("region", "ca-qc-1"),
            ("gpu_model", gpu),
            ("tenancy_kind", tkind),
            ("tenancy", tenancy),
            ("endpoint", endpoint),
            ("model", model),
        )
        if v
    }
    start = at - timedelta(minutes=rng.randrange(0, 600))
    return {
        "id": f"ev-{n}",
        "source": "bench",
        "org_id": _org_id(org),
        "project_id": None,
        "type": kind,
        "value": str(rng.randrange(1, value)),
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(minutes=1)).isoformat(),
        "dimensions": dims,
    }


async def bench_ingest(url: str, seconds: float) -> dict[str, Any]:
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.metering.ingest import IngestRules, ingest
    from control_plane.metering.schemas import UsageBatch

    rng = random.Random(7)
    now = datetime.now(UTC)
    decoder = msgspec.json.Decoder(UsageBatch)
    rules = IngestRules(late=timedelta(hours=72))
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    handled = stored = duplicates = batches = 0
    next_id = 0
    busy = 0.0
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            events = []
            for _ in range(BATCH):
                if next_id and rng.random() < DUPLICATE_SHARE:
                    events.append(_event(rng.randrange(next_id), now, random.Random(0)))
                    continue
                events.append(_event(next_id, now, rng))
                next_id += 1
            body = msgspec.json.encode({"events": events})  # what a source sends (not timed)
            t0 = time.perf_counter()
            batch = decoder.decode(body)
            async with sessionmaker() as db:
                result = await ingest(db, batch.events, rules, now)
                await db.commit()
            busy += time.perf_counter() - t0
            handled += len(events)
            stored += result.accepted
            duplicates += result.duplicates
            batches += 1
    finally:
        await engine.dispose()
    if duplicates == 0:
        raise BenchmarkError("no duplicate was detected: the de-duplication path was not run")
    return {
        "ingest_events_per_s": round(handled / busy),
        "ingest_stored_per_s": round(stored / busy),
        "ingest_events": handled,
        "ingest_duplicates": duplicates,
        "ingest_batches": batches,
        "ingest_batch_size": BATCH,
    }


# --- 2. invoice run --------------------------------------------------------------------


async def _generate_month(url: str, orgs: int) -> int:
    """ORGS x 720 hours x 4 dimension sets of hourly usage, made inside PostgreSQL."""
    from control_plane.db.engine import make_engine

    engine = make_engine(url)
    values = ", ".join(
        f"('{k}', '{g}', '{t}', '{ten}', '{ep}', '{m}', {v})"
        for k, g, t, ten, ep, m, v in DIMENSIONS
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE usage_hourly, usage_event, usage_source_stat"))
            # Bulk load without indexes, then build them once (sorted): much faster than
            # maintaining a B-tree of random keys row by row.
            await conn.execute(text("ALTER TABLE usage_hourly DROP CONSTRAINT pk_usage_hourly"))
            await conn.execute(text("DROP INDEX ix_usage_hourly_org_id_hour"))
            await conn.execute(
                text(f"""
                INSERT INTO usage_hourly (key, org_id, project_id, type, hour, region,
                    gpu_model, tenancy_kind, tenancy, endpoint, model, value, events)
                SELECT md5(o.n || '|' || d.kind || '|' || d.gpu || '|' || h.hour),
                       'org_bench' || lpad(o.n::text, 6, '0'),
                       'prj_bench' || lpad(o.n::text, 6, '0'), d.kind, h.hour, 'ca-qc-1',
                       d.gpu, d.tkind, d.tenancy, d.endpoint, d.model,
                       (d.value * (0.5 + ((o.n * 7919 + extract(hour from h.hour)::int)
                                           % 100) / 100.0))::numeric(24, 6), 1
                FROM generate_series(0, :orgs - 1) AS o(n)
                CROSS JOIN generate_series(CAST(:start AS timestamptz),
                                           CAST(:end AS timestamptz) - interval '1 hour',
                                           interval '1 hour') AS h(hour)
                CROSS JOIN (VALUES {values}) AS d(kind, gpu, tkind, tenancy, endpoint, model,
                                                  value)
            """),  # noqa: S608 - the VALUES are this module's constants
                {"orgs": orgs, "start": MONTH_START, "end": MONTH_END},
            )
            await conn.execute(
                text("ALTER TABLE usage_hourly ADD CONSTRAINT pk_usage_hourly PRIMARY KEY (key)")
            )
            await conn.execute(
                text("CREATE INDEX ix_usage_hourly_org_id_hour ON usage_hourly (org_id, hour)")
            )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE usage_hourly"))
            rows = await conn.scalar(text("SELECT count(*) FROM usage_hourly"))
    finally:
        await engine.dispose()
    return int(rows or 0)


async def bench_invoice_run(url: str, orgs: int) -> dict[str, Any]:
    from billing.invoices.service import run
    from control_plane.db.engine import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            have = await conn.scalar(text("SELECT count(*) FROM organization"))
        async with make_sessionmaker(engine)() as db:
            if (have or 0) < orgs:
                await _add_orgs(db, INGEST_ORGS, orgs)
                await db.commit()
    finally:
        await engine.dispose()
    t0 = time.perf_counter()
    rows = await _generate_month(url, orgs)
    generated = time.perf_counter() - t0
    log(f"  {rows:,} hourly rows generated in {generated:.0f} s")
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            t0 = time.perf_counter()
            result = await run(db, MONTH_START, MONTH_END, datetime.now(UTC))
            await db.commit()
            elapsed = time.perf_counter() - t0
        async with engine.begin() as conn:
            invoices = await conn.scalar(text("SELECT count(*) FROM invoice"))
            lines = await conn.scalar(text("SELECT count(*) FROM invoice_line"))
    finally:
        await engine.dispose()
    if result.drafts != orgs or invoices != orgs:
        raise BenchmarkError(f"expected {orgs} drafts, got {result.drafts} ({invoices} stored)")
    return {
        "invoice_run_s": round(elapsed, 2),
        "invoice_run_rows": rows,
        "invoice_run_orgs": orgs,
        "invoice_run_lines": int(lines or 0),
        "invoice_data_generation_s": round(generated, 1),
    }


# --- 3. usage query --------------------------------------------------------------------


async def _keys(url: str, orgs: int, rng: random.Random) -> list[tuple[str, str]]:
    """API keys (owner role) of KEYS random organizations: (org id, secret)."""
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.identity.models import ApiKey
    from control_plane.identity.roles import TENANT_GRANTS, TenantRole
    from control_plane.identity.secrets import new_api_key, token_digest
    from control_plane.ids import new_id

    now = datetime.now(UTC)
    chosen = rng.sample(range(orgs), min(KEYS, orgs))
    keys = []
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            for n in chosen:
                prefix, secret = new_api_key()
                db.add(
                    ApiKey(
                        id=new_id("key"),
                        org_id=_org_id(n),
                        project_id=f"prj_bench{n:06d}",
                        name="bench",
                        prefix=prefix,
                        secret_hash=token_digest(secret),
                        role=TenantRole.OWNER,
                        scopes=sorted(TENANT_GRANTS[TenantRole.OWNER]),
                        created_by=None,
                        created_at=now,
                        expires_at=now + timedelta(days=1),
                    )
                )
                keys.append((_org_id(n), secret))
            await db.commit()
    finally:
        await engine.dispose()
    return keys


def bench_usage_query(url: str, orgs: int, queries: int) -> dict[str, Any]:
    rng = random.Random(11)
    keys = asyncio.run(_keys(url, orgs, rng))
    env = {
        "CP_DATABASE_URL": url,
        "CP_RECONCILER_ENABLED": "false",
        "CP_LOG_LEVEL": "warning",
        "CP_AUTOSCALE_ENABLED": "false",
    }
    params = {
        "since": MONTH_START.isoformat(),
        "until": MONTH_END.isoformat(),
        "granularity": "day",
        "group_by": "gpu_model",
    }
    latencies = []
    with (
        serve_asgi("control_plane.asgi:app", env=env) as server,
        httpx.Client(base_url=server.base_url, timeout=30.0) as client,
    ):
        for warm in keys[:5]:  # first use of each key fills the key cache
            client.get(
                f"/api/v1/orgs/{warm[0]}/usage",
                params=params,
                headers={"Authorization": f"Bearer {warm[1]}"},
            )
        for _ in range(queries):
            org, secret = rng.choice(keys)
            t0 = time.perf_counter()
            response = client.get(
                f"/api/v1/orgs/{org}/usage",
                params=params,
                headers={"Authorization": f"Bearer {secret}"},
            )
            latencies.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 200:
                raise BenchmarkError(
                    f"usage query answered {response.status_code}: {response.text[:200]}"
                )
            rows = response.json()["rows"]
            if len(rows) != 31 * 2:  # 31 days x (h100, l40s) of gpu_seconds, + tokens
                rows = [r for r in rows if r["type"] == "gpu_seconds"]
                if len(rows) != 31 * 2:
                    raise BenchmarkError(f"unexpected usage rows: {len(rows)}")
    return {
        "usage_query_p50_ms": round(percentile(latencies, 50), 2),
        "usage_query_p99_ms": round(percentile(latencies, 99), 2),
        "usage_queries": queries,
    }


# --- entry point -----------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CP_BENCH_DATABASE_URL"),
        help="PostgreSQL database to use; its public schema is DROPPED and recreated "
        "(default: $CP_BENCH_DATABASE_URL)",
    )


def print_table(result: dict[str, Any]) -> None:
    rows = [
        (
            "ingest events/s (batched, 10 % duplicates)",
            f"{result['ingest_events_per_s']:,}",
            f">= {GOALS['ingest_events_per_s_min']:,}",
        ),
        ("invoice run (s)", f"{result['invoice_run_s']}", f"<= {GOALS['invoice_run_s_max']:g}"),
        ("  over hourly rows", f"{result['invoice_run_rows']:,}", ""),
        (
            "usage query p50 / p99 (ms)",
            f"{result['usage_query_p50_ms']} / {result['usage_query_p99_ms']}",
            "",
        ),
    ]
    for label, value, goal in rows:
        print(f"{label:<46}{value:>18}{goal:>14}")
    met = result["goals_met"]
    print(
        f"goals: ingest {'met' if met['ingest'] else 'MISSED'}, "
        f"invoice run {'met' if met['invoice_run'] else 'MISSED'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(
        "Metering and billing on PostgreSQL: ingest, invoice run, usage query.", argv, _options
    )
    if not args.pg_url or not args.pg_url.startswith("postgresql"):
        log(
            "bench.billing needs a PostgreSQL database whose public schema it may drop: "
            "pass --pg-url postgresql://USER@HOST:PORT/DB or set CP_BENCH_DATABASE_URL"
        )
        return 2
    plan = QUICK if args.quick else FULL
    started_load = load_average()
    try:
        log("setting up (schema, catalog, organizations, price book)")
        asyncio.run(_setup(args.pg_url, INGEST_ORGS))
        log(f"ingest: {plan['ingest_seconds']:.0f} s of batches of {BATCH:,}")
        ingest = asyncio.run(bench_ingest(args.pg_url, plan["ingest_seconds"]))
        log(f"invoice run: {plan['orgs']:,} organizations x 720 hours x 4 dimensions")
        invoices = asyncio.run(bench_invoice_run(args.pg_url, plan["orgs"]))
        log(f"usage query: {plan['queries']} requests")
        usage = bench_usage_query(args.pg_url, plan["orgs"], plan["queries"])
    except BenchmarkError as exc:
        log(f"billing benchmark failed: {exc}")
        return 1
    result = {
        "benchmark": "billing",
        "quick": args.quick,
        **ingest,
        **invoices,
        **usage,
        "goals": GOALS,
        "goals_met": {
            "ingest": ingest["ingest_events_per_s"] >= GOALS["ingest_events_per_s_min"],
            "invoice_run": invoices["invoice_run_s"] <= GOALS["invoice_run_s_max"],
        },
        "machine": {
            **machine_info(),
            "load_average_at_start": started_load,
            "note": "the benchmark, PostgreSQL and other jobs share the same cores",
        },
    }
    write_result(args.json, result)
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
