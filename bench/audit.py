"""Audit ledger: stored appends under contention and offline verification speed.

    python -m bench.audit [--quick] --json FILE [--pg-url URL] [--verify-only]

1. Append throughput on PostgreSQL, 32 concurrent writers over 100 organizations picked
   at random, so chains contend on their head rows as they would in production; four
   modes, each on a freshly migrated schema seeded with SEED_PER_CHAIN entries per chain
   and analyzed (see ``_seed``):
   - group commit (``append_group_commit_per_s``, and the headline ``append_per_s``):
     each writer loops ``await appender.append(entry)`` on one
     ``control_plane.audit.appender.LedgerAppender``, ONE entry per call, and a call
     returns only once the transaction holding its entry has committed; the appender's
     single flusher writes whatever is queued (up to 256 entries) in one transaction with
     ``store.record_many``. This is how the control plane appends entries that belong to
     no change's transaction (refused and failed requests, failed sign-ins);
   - in the request's transaction (``append_in_request_tx_per_s``): each writer loops
     ``async with sessionmaker() as db: await store.record(db, ...); await db.commit()``,
     one entry per transaction, as every successful audited HTTP request writes its entry
     together with its change (this cannot be group-committed: the entry must commit or
     roll back with the change);
   - batched (``append_batched_per_s``): each transaction appends BATCH entries of one
     organization picked at random (a bulk action of one tenant) with
     ``store.record_many``, then commits;
   - batched, mixed (``append_batched_mixed_per_s``): the same, but every entry of the
     batch is for a random organization, so a transaction locks up to BATCH chain heads
     (the worst case for head-lock contention).
   Afterwards every touched chain is read back and checked with ``verify_chain``; a broken
   or short chain fails the run.

   Which figure is ``append_per_s``: the issue asks for "committed appends/s" with 32
   concurrent writers. In the group-commit mode every append is one entry, one call, and
   individually acknowledged only after its commit, so it answers that question; the
   batched modes acknowledge BATCH entries per call and are not the headline. The
   in-request-transaction figure is reported beside it because it bounds how many
   successful audited requests one process can commit.
2. Offline verification, as an auditor runs ``cpctl audit verify DIR``: one
   organization's bundle of 1,000,000 entries (quick: 200,000) in 10 chains (one per
   region) is built with ``append`` and written with ``write_bundle``, with a signed
   checkpoint per region and inclusion proofs (not timed). ``verify_bundle`` (manifest,
   signatures, proofs, hash chains, file digests, CSV cross-check) is timed on it with
   its default of one worker process per CPU (``verify_per_s``; ``verify_per_cpu_s``
   counts the CPU of every process), then in one process (``verify_one_process_per_s``).
   For reference, ``verify_chain`` over 1,000,000 in-memory entries in 100 chains, one
   process (``verify_chain_per_s``). ``--verify-only`` runs this part alone (no
   PostgreSQL needed).

Goals (from the issue): >= 5,000 appends/s and >= 500,000 entries/s verified
(``goals_met.append`` judges ``append_per_s``; ``append_in_request_tx`` and
``append_batched`` are judged against the same figure for information).
See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.exc import SQLAlchemyError

from bench.common import (
    VAR_DIR,
    load_average,
    log,
    machine_info,
    parse_args,
    percentile,
    reset_postgres_schema,
)
from bench.common import write_json as write_result
from control_plane.audit import (
    AuditEntry,
    Keyring,
    Leaf,
    SigningKey,
    append,
    build_checkpoint,
    chain_name,
    payload_hash,
    proofs_for,
    store,
    verify_bundle,
    verify_chain,
    write_bundle,
)
from control_plane.audit.appender import DEFAULT_MAX_BATCH, LedgerAppender
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.migrate import upgrade

WRITERS = 32
ORGS = 100
SEED_PER_CHAIN = 100
BATCH = 10
REGION = "ca-qc-1"
GOALS = {"append_per_s_min": 5000, "verify_per_s_min": 500_000}
T0 = datetime(2026, 3, 1, tzinfo=UTC)
OFFLINE_ORGS = 10
OFFLINE_REGIONS = tuple(f"region-{i}" for i in range(10))
PAGE = 5000


class BenchmarkError(RuntimeError):
    """The ledger did not behave as the benchmark requires; the numbers would lie."""


@dataclass(frozen=True)
class Plan:
    warmup: float
    duration: float
    offline_entries: int


QUICK = Plan(warmup=1.0, duration=5.0, offline_entries=200_000)
FULL = Plan(warmup=2.0, duration=20.0, offline_entries=1_000_000)


# --- (1) appends on PostgreSQL ---------------------------------------------------------


def org_id(i: int) -> str:
    return f"org_bench{i:03d}"


async def _seed(url: str) -> None:
    """SEED_PER_CHAIN entries on each organization's chain, then fresh planner statistics.

    A production ledger is not empty and autovacuum keeps its statistics current. Without
    them (this VM's PostgreSQL runs with autovacuum off) the plan each connection caches
    for the batch statement is made for an empty table: it scans audit_entry sequentially,
    and every batch gets slower as the ledger grows (measured: 2 ms, then 16 ms per batch
    of 32 after 12 s)."""
    engine = make_engine(url)
    entries = [_new_entry(99, i, org_id(i % ORGS)) for i in range(SEED_PER_CHAIN * ORGS)]
    try:
        for start in range(0, len(entries), 1000):
            async with make_sessionmaker(engine)() as db:
                await store.record_many(db, entries[start : start + 1000])
                await db.commit()
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE audit_entry, audit_chain_head"))
    finally:
        await engine.dispose()


def prepare_database(url: str) -> None:
    """Empty public schema, every migration, then a seeded and analyzed ledger."""
    try:
        asyncio.run(reset_postgres_schema(url))
        upgrade(url)
        asyncio.run(_seed(url))
    except (OSError, SQLAlchemyError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        raise BenchmarkError(f"cannot prepare {shown}: {type(exc).__name__}: {exc}") from exc


@dataclass
class WriterStats:
    latencies_ms: list[float] = field(default_factory=list)  # per transaction
    committed: int = 0  # entries
    total: int = 0  # entries, warm-up included
    errors: Counter[str] = field(default_factory=Counter)


def _new_entry(number: int, i: int, org: str) -> store.NewEntry:
    return store.NewEntry(
        org_id=org,
        region=REGION,
        actor_kind="user",
        actor_id=f"usr_bench{number:02d}",
        action="projects.create",
        target_type="project",
        target_id=f"prj_{number}_{i}",
        request_id=f"req_{number}_{i}",
        source_address="198.51.100.9",
        outcome="success",
        payload={"writer": number, "i": i},
        at=datetime.now(UTC),
    )


async def _writer(
    number: int,
    maker: Any,
    measure_from: float,
    deadline: float,
    touched: set[str],
    batch: int,
    mixed: bool,
) -> WriterStats:
    """Append until ``deadline``, ``batch`` entries per transaction (1: ``record``, as a
    request does; more: ``record_many``, of one organization unless ``mixed``); only
    transactions started after ``measure_from`` are counted."""
    rng = random.Random(number)  # not security-sensitive: spreads writers over the orgs
    stats = WriterStats()
    i = 0
    while (started := time.perf_counter()) < deadline:
        new = []
        org = org_id(rng.randrange(ORGS))
        for _ in range(batch):
            org = org_id(rng.randrange(ORGS)) if mixed else org
            touched.add(chain_name(org, REGION))
            i += 1
            new.append(_new_entry(number, i, org))
        try:
            async with maker() as db:
                if batch == 1:
                    one = new[0]
                    await store.record(
                        db,
                        org_id=one.org_id,
                        region=one.region,
                        actor_kind=one.actor_kind,
                        actor_id=one.actor_id,
                        action=one.action,
                        target_type=one.target_type,
                        target_id=one.target_id,
                        request_id=one.request_id,
                        source_address=one.source_address,
                        outcome=one.outcome,
                        payload=one.payload,
                        at=one.at,
                    )
                else:
                    await store.record_many(db, new)
                await db.commit()
        except store.LedgerInconsistent as exc:
            raise BenchmarkError(f"ledger corrupted during the benchmark: {exc}") from exc
        except Exception as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        stats.total += batch
        if started >= measure_from:
            stats.committed += batch
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
    return stats


async def _verify_stored(maker: Any, chains: set[str]) -> tuple[int, int]:
    """Read back every touched chain and check it; returns (chains, entries) checked."""
    total = 0
    async with maker() as db:
        for chain in sorted(chains):
            entries: list[AuditEntry] = []
            while True:
                after = entries[-1].seq if entries else 0
                page = await store.entries(db, chain, after_seq=after, limit=PAGE)
                entries += page
                if len(page) < PAGE:
                    break
            problem = verify_chain(entries, chain=chain)
            if problem is not None:
                raise BenchmarkError(f"ledger corrupted by the benchmark: {problem}")
            head = (
                await db.execute(
                    text("SELECT seq, entry_hash FROM audit_chain_head WHERE chain = :c"),
                    {"c": chain},
                )
            ).one()
            if not entries or (head.seq, head.entry_hash) != (
                entries[-1].seq,
                entries[-1].entry_hash,
            ):
                raise BenchmarkError(f"{chain}: head {tuple(head)} is not the last stored entry")
            total += len(entries)
    return len(chains), total


async def _group_writer(
    number: int,
    appender: LedgerAppender,
    measure_from: float,
    deadline: float,
    touched: set[str],
) -> WriterStats:
    """Append one entry per call until ``deadline``; each call returns after its commit."""
    rng = random.Random(number)  # not security-sensitive: spreads writers over the orgs
    stats = WriterStats()
    i = 0
    while (started := time.perf_counter()) < deadline:
        org = org_id(rng.randrange(ORGS))
        touched.add(chain_name(org, REGION))
        i += 1
        try:
            await appender.append(_new_entry(number, i, org))
        except store.LedgerInconsistent as exc:
            raise BenchmarkError(f"ledger corrupted during the benchmark: {exc}") from exc
        except Exception as exc:
            stats.errors[type(exc).__name__] += 1
            continue
        stats.total += 1
        if started >= measure_from:
            stats.committed += 1
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
    return stats


async def _run_appends(url: str, plan: Plan, batch: int, mixed: bool) -> dict[str, Any]:
    # One connection per writer: fewer (8 or 16) measured slower, since commits wait on the
    # WAL flush and more concurrent committers share each flush.
    engine = make_engine(url, pool_size=WRITERS, max_overflow=0)
    maker = make_sessionmaker(engine)
    touched: set[str] = set()
    try:
        cpu_before = time.process_time()
        start = time.perf_counter()
        measure_from = start + plan.warmup
        deadline = measure_from + plan.duration
        results = await asyncio.gather(
            *(
                _writer(n, maker, measure_from, deadline, touched, batch, mixed)
                for n in range(WRITERS)
            )
        )
        # Appends started before the deadline finish after it: count the real window.
        elapsed = time.perf_counter() - measure_from
        cpu_seconds = time.process_time() - cpu_before
        load = load_average()
        log(f"  verifying {len(touched)} stored chains ...")
        checked = await _verify_stored(maker, touched)
    finally:
        await engine.dispose()
    return _summary(results, elapsed, cpu_seconds, load, checked)


async def _run_group_commit(url: str, plan: Plan) -> dict[str, Any]:
    # The writers hold no connection: only the flusher (and the check afterwards) do.
    engine = make_engine(url, pool_size=2, max_overflow=0)
    maker = make_sessionmaker(engine)
    appender = LedgerAppender(engine, max_batch=DEFAULT_MAX_BATCH)
    touched: set[str] = set()
    try:
        appender.start()
        cpu_before = time.process_time()
        start = time.perf_counter()
        measure_from = start + plan.warmup
        deadline = measure_from + plan.duration
        try:
            results = await asyncio.gather(
                *(
                    _group_writer(n, appender, measure_from, deadline, touched)
                    for n in range(WRITERS)
                )
            )
        finally:
            await appender.close()
        elapsed = time.perf_counter() - measure_from
        cpu_seconds = time.process_time() - cpu_before
        load = load_average()
        log(f"  verifying {len(touched)} stored chains ...")
        checked = await _verify_stored(maker, touched)
    finally:
        await engine.dispose()
    result = _summary(results, elapsed, cpu_seconds, load, checked)
    # Warm-up included: how many appends shared each transaction.
    result["append_entries_per_tx"] = round(
        appender.entries_committed / max(1, appender.batches_committed), 1
    )
    return result


def _summary(
    results: Sequence[WriterStats],
    elapsed: float,
    cpu_seconds: float,
    load: Any,
    checked: tuple[int, int],
) -> dict[str, Any]:
    latencies = [x for r in results for x in r.latencies_ms]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    committed = sum(r.committed for r in results)
    return {
        "append_per_s": round(committed / elapsed, 1),
        "append_p50_ms": round(percentile(latencies, 50), 3),
        "append_p99_ms": round(percentile(latencies, 99), 3),
        "append_errors": sum(errors.values()),
        "append_error_kinds": dict(errors),
        "appends_committed": committed,
        # This process's CPU (writers: SQLAlchemy, asyncpg, hashing) per append, warm-up
        # included; PostgreSQL's own CPU is not counted.
        "append_client_cpu_ms": round(
            1000 * cpu_seconds / max(1, sum(r.total for r in results)), 3
        ),
        "append_seconds": round(elapsed, 2),
        "chains_verified_after_append": checked[0],
        "stored_entries_verified": checked[1],
        "load_average_after_append": load,
    }


# (JSON key infix, entries per transaction, organizations mixed within a transaction);
# batch 0 is the group-commit mode (one entry per append call, transactions shared).
MODES = (
    ("group_commit_", 0, False),
    ("in_request_tx_", 1, False),
    ("batched_", BATCH, False),
    ("batched_mixed_", BATCH, True),
)
HEADLINE = "group_commit_"


def bench_appends(url: str, plan: Plan) -> dict[str, Any]:
    """Each mode under ``append_<mode>_*`` keys; the group-commit figure is also the
    headline ``append_per_s``. p50/p99 time one append call (group commit, in request
    transaction) or one transaction of BATCH entries (batched modes)."""
    result: dict[str, Any] = {"append_batch_size": BATCH, "append_max_group": DEFAULT_MAX_BATCH}
    for infix, batch, mixed in MODES:
        log("append: resetting schema and migrating")
        prepare_database(url)
        if batch == 0:
            mode = "one entry per append call, group commit"
        elif batch == 1:
            mode = "one entry per transaction"
        else:
            mode = f"{batch} entries per transaction"
        mode += ", organizations mixed" if mixed else ""
        log(
            f"append: {WRITERS} writers over {ORGS} orgs, {mode}, "
            f"{plan.warmup:.0f}+{plan.duration:.0f} s ..."
        )
        if batch == 0:
            measured = asyncio.run(_run_group_commit(url, plan))
        else:
            measured = asyncio.run(_run_appends(url, plan, batch, mixed))
        result.update((_mode_key(key, infix), value) for key, value in measured.items())
    result["append_per_s"] = result[_mode_key("append_per_s", HEADLINE)]
    result["append_per_s_mode"] = HEADLINE.rstrip("_")
    return result


def _mode_key(key: str, infix: str) -> str:
    """append_per_s -> append_batched_per_s; appends_committed -> appends_committed_batched."""
    if key.startswith("append_"):
        return "append_" + infix + key.removeprefix("append_")
    return f"{key}_{infix.rstrip('_')}"


# --- (2) offline verification ----------------------------------------------------------


def build_entries(total: int, orgs: int = OFFLINE_ORGS) -> dict[str, list[AuditEntry]]:
    """``total`` entries round-robin over ``orgs`` orgs x 10 regions, in memory."""
    chains = [
        (f"org_off{o:02d}", region, chain_name(f"org_off{o:02d}", region))
        for o in range(orgs)
        for region in OFFLINE_REGIONS
    ]
    by_chain: dict[str, list[AuditEntry]] = {c: [] for _, _, c in chains}
    digests = [payload_hash({"i": i}) for i in range(64)]
    heads: dict[str, AuditEntry | None] = dict.fromkeys(by_chain)
    for i in range(total):
        org, _, chain = chains[i % len(chains)]
        entry = append(
            heads[chain],
            chain=chain,
            at=T0 + timedelta(milliseconds=i),
            actor_kind="user",
            actor_id="usr_1",
            org_id=org,
            action="projects.create",
            target_type="project",
            target_id=f"prj_{i}",
            request_id=f"req_{i}",
            source_address="198.51.100.9",
            outcome="success",
            decision_ref=None,
            payload_hash=digests[i % len(digests)],
        )
        heads[chain] = entry
        by_chain[chain].append(entry)
    return by_chain


def time_verify_chain(by_chain: dict[str, list[AuditEntry]]) -> tuple[int, float, float]:
    """(entries, wall seconds, CPU seconds of this process): on shared cores the CPU
    figure says what verification costs, the wall figure what it took."""
    count = sum(len(v) for v in by_chain.values())
    started, cpu_started = time.perf_counter(), time.process_time()
    for chain, entries in by_chain.items():
        problem = verify_chain(entries, chain=chain)
        if problem is not None:
            raise BenchmarkError(f"freshly built chain does not verify: {problem}")
    return count, time.perf_counter() - started, time.process_time() - cpu_started


def time_verify_bundle(total: int, workers: Sequence[int | None]) -> list[tuple[int, float, float]]:
    """Build one organization's ``total`` entries in 10 chains, write them as a bundle
    (signed checkpoints, proofs), free them, and time ``verify_bundle`` on it with each
    number of ``workers`` (None: its default, one process per CPU): (entries, wall
    seconds, CPU seconds of this process and its workers) per run.

    The entries are freed first because an auditor's verifier holds none: a parent with a
    million live objects makes every forked worker slower (measured 101k/s instead of
    170-190k/s)."""
    by_chain = build_entries(total, orgs=1)
    org = "org_off00"
    ring = Keyring()
    for region in OFFLINE_REGIONS:
        ring.add(region, SigningKey.generate(), T0)
    end = T0 + timedelta(days=1)
    cps, proofs = [], []
    for region in OFFLINE_REGIONS:
        heads = [
            Leaf(c, v[-1].seq, v[-1].entry_hash)
            for c, v in by_chain.items()
            if c.endswith("/" + region) and v
        ]
        cp, leaves = build_checkpoint(
            region=region, at=end, heads=heads, prev=None, key=ring.signing_key(region)
        )
        cps.append(cp)
        proofs += proofs_for(cp, leaves, [c for c in by_chain if c.startswith(org + "/")])
    entries = [e for c, v in by_chain.items() if c.startswith(org + "/") for e in v]
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="audit-", dir=VAR_DIR)
    try:
        write_bundle(workdir, entries, cps, proofs, ring.public_keys(), org_id=org)
        del by_chain, entries, cps, proofs
        gc.collect()
        runs = []
        for count in workers:
            started, cpu_started = time.perf_counter(), _cpu_with_children()
            result = verify_bundle(workdir, workers=count)
            elapsed, cpu = time.perf_counter() - started, _cpu_with_children() - cpu_started
            if not result.ok:
                raise BenchmarkError(f"freshly written bundle does not verify: {result.message}")
            runs.append((result.entries, elapsed, cpu))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return runs


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its finished (joined) worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_offline(plan: Plan) -> dict[str, Any]:
    log(f"verify: building {plan.offline_entries:,} entries in memory (not timed) ...")
    by_chain = build_entries(plan.offline_entries)
    log("verify: verify_chain over all chains, in memory, one process ...")
    count, seconds, cpu_seconds = time_verify_chain(by_chain)
    del by_chain
    log(f"verify: one organization's bundle of {plan.offline_entries:,} entries (not timed) ...")
    log("verify: verify_bundle on it, on every CPU, then in one process ...")
    runs = time_verify_bundle(plan.offline_entries, (None, 1))
    (n, wall, cpu), (_, serial_wall, serial_cpu) = runs
    return {
        "verify_per_s": round(n / wall, 1),
        "entries_verified": n,
        "verify_seconds": round(wall, 3),
        "verify_per_cpu_s": round(n / cpu, 1),
        "verify_workers": len(os.sched_getaffinity(0)),
        "verify_chains": len(OFFLINE_REGIONS),
        "verify_one_process_per_s": round(n / serial_wall, 1),
        "verify_one_process_per_cpu_s": round(n / serial_cpu, 1),
        "verify_chain_per_s": round(count / seconds, 1),
        "verify_chain_per_cpu_s": round(count / cpu_seconds, 1),
        "verify_chain_entries": count,
        "load_average_after_verify": load_average(),
    }


# --- report ----------------------------------------------------------------------------


_MODE_LABELS = {
    "group_commit_": "group commit, 1 entry per call",
    "in_request_tx_": "1 entry per transaction (in request tx)",
    "batched_": f"{BATCH} entries of one org per transaction",
    "batched_mixed_": f"{BATCH} entries of {BATCH} orgs per transaction",
}


def print_table(result: dict[str, Any]) -> None:
    goals = result["goals"]
    goal = f">= {goals['append_per_s_min']:,}"
    verify_only = result.get("verify_only", False)
    print(f"\naudit benchmark ({'quick' if result['quick'] else 'full'})")
    if not verify_only:
        print(f"appends: {result['writers']} writers, {result['orgs']} orgs, PostgreSQL")
    print(f"{'measure':<58}{'value':>14}{'goal':>12}")
    rows: list[tuple[str, str, str]] = []
    for infix, _, _ in [] if verify_only else MODES:
        headline = " [append_per_s]" if infix == HEADLINE else ""
        rows += [
            (
                f"appends/s, {_MODE_LABELS[infix]}{headline}",
                f"{result[_mode_key('append_per_s', infix)]:,.0f}",
                goal if infix in (HEADLINE, "in_request_tx_", "batched_") else "",
            ),
            (
                "  per call p50 / p99 ms",
                f"{result[_mode_key('append_p50_ms', infix)]:.1f} / "
                f"{result[_mode_key('append_p99_ms', infix)]:.1f}",
                "",
            ),
            ("  errors", str(result[_mode_key("append_errors", infix)]), "0"),
            (
                "  benchmark process CPU ms per append",
                f"{result[_mode_key('append_client_cpu_ms', infix)]:.3f}",
                "",
            ),
        ]
        if infix == HEADLINE:
            rows.append(
                (
                    "  appends per transaction (mean)",
                    f"{result[_mode_key('append_entries_per_tx', infix)]:.1f}",
                    "",
                )
            )
    rows += [
        (
            f"verify_bundle entries/s ({result['entries_verified']:,}, "
            f"{result['verify_workers']} processes) [verify_per_s]",
            f"{result['verify_per_s']:,.0f}",
            f">= {goals['verify_per_s_min']:,}",
        ),
        ("  entries per CPU second (all processes)", f"{result['verify_per_cpu_s']:,.0f}", ""),
        ("  in one process, entries/s", f"{result['verify_one_process_per_s']:,.0f}", ""),
        (
            f"verify_chain in memory, one process ({result['verify_chain_entries']:,})",
            f"{result['verify_chain_per_s']:,.0f}",
            "",
        ),
    ]
    for label, value, target in rows:
        print(f"{label:<58}{value:>14}{target:>12}")
    met = result["goals_met"]

    def word(ok: bool) -> str:
        return "met" if ok else "MISSED"

    if verify_only:
        print(f"goals: verify {word(met['verify'])} (appends not run: --verify-only)")
    else:
        print(
            f"goals: append {word(met['append'])} (group commit); for information, "
            f"{word(met['append_in_request_tx'])} in the request's transaction, "
            f"{word(met['append_batched'])} batched; verify {word(met['verify'])}"
        )
    print(
        f"load average (1/5/15 min) at start {result['machine']['load_average_at_start']}, "
        f"at end {result['machine']['load_average']}"
    )


# --- entry point -----------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CP_BENCH_DATABASE_URL"),
        help="PostgreSQL database to use; its public schema is DROPPED and recreated "
        "(default: $CP_BENCH_DATABASE_URL)",
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="only the offline verification (part 2): no PostgreSQL needed",
    )


def _pg_url_problem(url: str | None) -> str | None:
    if not url:
        return (
            "bench.audit needs a PostgreSQL database whose public schema it may drop: "
            "pass --pg-url postgresql://USER@HOST:PORT/DB or set CP_BENCH_DATABASE_URL"
        )
    if not url.startswith("postgresql"):
        return f"--pg-url must be a postgresql:// URL, got {url.split(':', 1)[0]}:"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(
        "Audit ledger: concurrent stored appends on PostgreSQL and offline verification speed.",
        argv,
        _options,
    )
    if not args.verify_only and (problem := _pg_url_problem(args.pg_url)):
        log(problem)
        return 2
    plan = QUICK if args.quick else FULL
    started_load = load_average()
    try:
        appends = {} if args.verify_only else bench_appends(args.pg_url, plan)
        offline = bench_offline(plan)
    except BenchmarkError as exc:
        log(f"audit benchmark failed: {exc}")
        return 1
    goals_met = {"verify": offline["verify_per_s"] >= GOALS["verify_per_s_min"]}
    if appends:
        goals_met = {
            "append": appends["append_per_s"] >= GOALS["append_per_s_min"],
            "append_in_request_tx": appends["append_in_request_tx_per_s"]
            >= GOALS["append_per_s_min"],
            "append_batched": appends["append_batched_per_s"] >= GOALS["append_per_s_min"],
            **goals_met,
        }
    result = {
        "benchmark": "audit",
        "quick": args.quick,
        "verify_only": args.verify_only,
        "writers": WRITERS,
        "orgs": ORGS,
        **appends,
        **offline,
        "goals": GOALS,
        "goals_met": goals_met,
        "machine": {
            **machine_info(),
            "load_average_at_start": started_load,
            "note": "writers, PostgreSQL and other jobs share the same cores",
        },
    }
    write_result(args.json, result)
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
