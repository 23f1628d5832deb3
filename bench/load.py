"""Load test: a mixed workload against 1, 2 and 3 control-plane replicas on one PostgreSQL.

    python -m bench.load [--quick] --json FILE --pg-url postgresql://USER@HOST:PORT/DB

Bounded and loopback-only. The database's public schema is dropped and recreated; the
demo data is seeded and an inference endpoint on the built-in tiny model is deployed (a
real Triton server, started by the reconciler). As the Helm chart runs them, a reconciler
worker process (at the default 1 s interval) takes no traffic, and the replicas only serve
(API, portal and gateway; their reconciler off). Until 2026-12-06 (late) replica 1 also
reconciled every 0.2 s while serving, which no chart topology does. Requests, spread
round-robin over the replicas, are a mix of:

- portal pages (``/tenancies``, ``/insights``, ``/endpoints``, ``/``, as the signed-in
  demo member), 30 %;
- tenancy API calls (list, read, events; a schedule change: an audited write), 42 %;
- inference through the gateway (``/v1/completions``, 40 words in, 16 tokens out), 28 %.

For each replica count: first ``CLIENTS`` closed-loop clients for a fixed time (the
saturation throughput), then an open loop offering fixed rates at fractions of it (arrivals
do not wait for answers, so queueing shows in the latency). The highest offered rate that
was served in full with no error is the *highest sustained rate*: in full means at least
99 % of the offered rate over the step (arrivals and the drain of what is still queued
after the last one), i.e. a queue that did not grow by more than 1 % of the step's work
(until 2026-12-06 evening: 95 %, which let a step end with 0.6 s of queued work and
counted a rate whose API p99 was 1.3 s as sustained). JSON key
``replicas``: ``"1"|"2"|"3"`` -> ``rps`` (that rate, served), ``p50_ms`` and ``p99_ms``
(the API calls' at that rate), ``errors`` (non-2xx answers and failed or timed-out requests
at that rate; ``errors_all_steps`` counts the overloaded steps too), ``within_goal`` (zero
errors and API p99 < 100 ms there), ``rps_within_p99_goal`` (the highest rate whose API
p99 stayed under 100 ms), ``server_cpu_ms_per_request`` (the serving replicas' CPU time per
answered request at that rate, from /proc: the lever for the rate one replica sustains),
``with_headroom`` (``rps``, ``p99_ms``, ``errors``, ``within_goal`` of the highest rate
served in full with no error while each replica used at most 70 % of a core and the VM at
most 75 % of its CPU: below the point where the chart's HPA scales out, and with the cores
Triton, PostgreSQL and the generator take here left to them; ``goals_met.with_headroom``
says whether the goal held there at every replica count), ``saturation`` and ``sweep``
(every step: latency per request class, ``page``, ``api_read``, ``api_write``,
``inference``; the replicas' CPU per request, ``replica_core_share``: the share of a core
each used, ``machine_busy_share`` and ``machine_steal_share``: how busy the whole VM was,
and the share of its time the hypervisor gave to other guests; ``cpu_by_role``: the share
of the VM's CPU taken by the serving replicas, the idle ones, the worker, Triton,
PostgreSQL, the load generator and the rest). ``--inference-nice N`` runs the Triton
servers at CPU niceness N (``inference_nice`` in the JSON; default 0). Goal (issue 9):
zero errors, API p99 < 100 ms at the highest sustained rate.
On a 2-vCPU machine the replicas share the same two cores with Triton and the load
generator, so more replicas cannot add throughput here; the figures show what holds
(errors, tail latency), not horizontal scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import time
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import text

from bench.common import (
    VAR_DIR,
    Server,
    load_average,
    log,
    machine_cpu_seconds,
    machine_info,
    parse_args,
    percentile,
    process_cpu_seconds,
    processes_cpu_seconds,
    reset_postgres_schema,
    serve_asgi,
    write_json,
)
from bench.gateway import deploy, setup_database
from control_plane.db.engine import make_engine
from control_plane.db.migrate import upgrade
from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.triton.driver import stop_all
from control_plane.heap import freeze_startup_heap

REGION = "ca-qc-1"
CLIENTS = 12
TIMEOUT = 10.0  # per phase (connect, pool wait, read): longer counts as an error
GOALS = {"errors_max": 0, "api_p99_ms_max": 100.0}
PAGES = ("/tenancies", "/insights", "/endpoints", "/")
MEMBER = {"email": "member@demo.example", "password": "demo-member-pass"}
KINDS = ("vm", "kubernetes", "slurm")


@dataclass(frozen=True)
class Plan:
    seconds: float  # closed-loop saturation run per replica count
    step_seconds: float  # each open-loop rate
    fractions: tuple[float, ...]  # of the saturation throughput, offered open-loop
    warmup: float = 3.0


QUICK = Plan(seconds=6.0, step_seconds=4.0, fractions=(0.25, 0.5, 0.75), warmup=2.0)
FULL = Plan(
    seconds=20.0,
    step_seconds=12.0,
    fractions=(0.2, 0.35, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),
)
SERVED = 0.99  # of the offered rate, for a step to count as kept up with
# Headroom: each serving replica at most at 70 % of a core (the api Deployment's HPA, at
# 70 % of its CPU request, scales out well before that) and the VM at most 75 % busy (here
# Triton, PostgreSQL, the worker and the load generator share its two cores with the
# replicas; in a cluster they run elsewhere).
HEADROOM = {"replica_core_share": 0.7, "machine_busy_share": 0.75}
FAR_BEHIND = 0.95  # below this share served, higher rates are not tried


@dataclass
class Tally:
    """Latencies (ms) per request class, and errors."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def add(self, kind: str, ms: float) -> None:
        self.latencies.setdefault(kind, []).append(ms)

    def fail(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:200])


@dataclass(frozen=True)
class World:
    org_id: str
    key: str
    session: dict[str, str]  # cookie + CSRF header of the demo member
    tenancy_ids: list[str]


PROBE_SECONDS = 0.01  # how often ``LoopLag`` checks the generator's event loop
LOCK_SAMPLE_SECONDS = 0.05  # how often ``LockWaits`` looks at the database
# Whose CPU a step's ``cpu_by_role`` counts (see ``Processes``).
ROLES = ("serving_replicas", "idle_replicas", "worker", "inference_server", "database",
         "load_generator", "other")  # fmt: skip


@dataclass(frozen=True)
class Processes:
    """Who is who on the machine while a level runs, to split the VM's CPU by role."""

    serving: tuple[int, ...]  # the replicas taking this level's traffic
    idle: tuple[int, ...]  # the other replicas, started for the next levels
    worker: int  # the reconciler worker
    triton_dir: Path  # state.json of each Triton server (its process group)

    def snapshot(self) -> dict[int, tuple[str, float]]:
        """pid -> (role, CPU seconds so far) of every process alive now."""
        groups = self._inference_groups()
        return {
            pid: (self._role(pid, group, command, groups), used)
            for pid, (group, command, used) in processes_cpu_seconds().items()
        }

    def _role(self, pid: int, group: int, command: str, inference: set[int]) -> str:
        if pid in self.serving:
            return "serving_replicas"
        if pid in self.idle:
            return "idle_replicas"
        if pid == self.worker:
            return "worker"
        if pid == os.getpid():
            return "load_generator"
        if group in inference:
            return "inference_server"  # tritonserver and its Python backend stubs
        return "database" if command == "postgres" else "other"

    def _inference_groups(self) -> set[int]:
        groups = set()
        for state in self.triton_dir.glob("*/state.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                groups.add(int(json.loads(state.read_text())["pid"]))
        return groups


@dataclass
class LoopLag:
    """How late the load generator's own event loop woke a task that asked to sleep
    ``PROBE_SECONDS``: while it is late, every answer waiting to be read is timed late
    too, so a latency spike with a large lag here is the generator's, not the server's."""

    late_ms: list[float] = field(default_factory=list)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + PROBE_SECONDS
            await asyncio.sleep(PROBE_SECONDS)
            self.late_ms.append(max(0.0, (loop.time() - asked) * 1000))

    def figures(self) -> dict[str, float | None]:
        if not self.late_ms:
            return {"p99": None, "max": None}
        return {"p99": round(percentile(self.late_ms, 99), 1), "max": round(max(self.late_ms), 1)}


# Backends of the benchmark's database waiting on a lock, by what they were running.
_LOCK_WAITS = text(
    "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 48) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@dataclass
class LockWaits:
    """Which statements waited on a lock (row locks included) in the benchmark's database,
    sampled every ``LOCK_SAMPLE_SECONDS`` from ``pg_stat_activity``: ``figures`` is the
    mean number of backends waiting per sample, by the statement's first 48 characters."""

    url: str
    samples: int = 0
    waiting: dict[str, int] = field(default_factory=dict)

    async def run(self) -> None:
        engine = make_engine(self.url)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                while True:
                    for (statement,) in await conn.execute(_LOCK_WAITS):
                        self.waiting[statement] = self.waiting.get(statement, 0) + 1
                    self.samples += 1
                    await asyncio.sleep(LOCK_SAMPLE_SECONDS)
        finally:
            await engine.dispose()

    def figures(self) -> dict[str, float]:
        ranked = sorted(self.waiting.items(), key=lambda item: -item[1])
        return {what: round(count / max(1, self.samples), 3) for what, count in ranked}


def cpu_by_role(
    before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]],
    capacity_seconds: float,
) -> dict[str, float]:  # fmt: skip
    """The share of the machine's CPU (``capacity_seconds``: cores x wall time) each role
    used between two snapshots. A process that started in between counts from zero; one
    that ended in between is not counted (its last CPU time is gone with it)."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, (role, seconds) in after.items():
        used[role] += seconds - before.get(pid, (role, 0.0))[1]
    return {role: round(value / capacity_seconds, 3) for role, value in used.items()}


def _env(root: Any, url: str, reconcile: bool) -> dict[str, str]:
    return {
        "CP_DATABASE_URL": url,
        "CP_MODEL_STORE_ROOT": str(root / "models"),
        "CP_TRITON_DIR": str(root / "triton"),
        "CP_KEY_DIR": str(root / "keys"),
        "CP_SIM_DIR": str(root / "sim"),
        "CP_RECONCILER_ENABLED": "true" if reconcile else "false",
        "CP_AUTOSCALE_ENABLED": "false",
        "CP_LOG_LEVEL": "WARNING",
        "CP_GATEWAY_REQUESTS_PER_SECOND": "1000000",
        "CP_GATEWAY_TOKENS_PER_MINUTE": "1000000000",
        "CP_ENVIRONMENT": "development",
        "CP_COOKIE_SECURE": "false",
        "CP_LOGIN_RATE_PER_MINUTE": "100000",
    }


async def _world(base: str, org_id: str, key: str, model_dir: Any) -> World:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        await deploy(http, org_id, key, model_dir)
        login = await http.post("/api/v1/auth/login", json=MEMBER)
        login.raise_for_status()
        cookie = f"cp_session={http.cookies['cp_session']}"
        session = {"Cookie": cookie, "X-CSRF-Token": login.json()["csrf_token"]}
        ids = [await _tenancy(http, org_id, session, kind) for kind in KINDS]
    return World(org_id, key, session, ids)


async def _tenancy(http: httpx.AsyncClient, org_id: str, session: dict[str, str], kind: str) -> str:
    """A simulated tenancy of the demo organization, once active (the reads' target)."""
    body = {"name": f"load-{kind.replace('_', '-')}", "kind": kind, "region": REGION,
            "gpu_model": "l40s", "gpus_per_node": 1}  # fmt: skip
    created = await http.post(f"/api/v1/orgs/{org_id}/tenancies", json=body, headers=session)
    if created.status_code != 201:
        raise RuntimeError(f"tenancy not created: {created.text}")
    url = f"/api/v1/orgs/{org_id}/tenancies/{created.json()['id']}"
    for _ in range(300):
        if (await http.get(url, headers=session)).json()["state"] == "active":
            return str(created.json()["id"])
        await asyncio.sleep(0.2)
    raise RuntimeError(f"tenancy {created.json()['id']} not active")


def _request(world: World, rng: random.Random) -> tuple[str, str, str, dict[str, Any]]:
    """(class, method, path, request options) of one request of the mix."""
    roll = rng.random()
    tenancy = rng.choice(world.tenancy_ids)
    base = f"/api/v1/orgs/{world.org_id}/tenancies"
    bearer = {"Authorization": f"Bearer {world.key}"}  # the project key that calls models
    member = world.session  # the organization's tenancies are not the project key's
    if roll < 0.3:
        return "page", "GET", rng.choice(PAGES), {"headers": {"Cookie": member["Cookie"]}}
    if roll < 0.45:
        return "api_read", "GET", base, {"headers": member, "params": {"limit": "20"}}
    if roll < 0.6:
        return "api_read", "GET", f"{base}/{tenancy}", {"headers": member}
    if roll < 0.68:
        return "api_read", "GET", f"{base}/{tenancy}/events", {"headers": member}
    if roll < 0.72:
        body = {"idle_release_minutes": rng.choice([None, 60, 120])}
        return "api_write", "POST", f"{base}/{tenancy}/schedule", {"headers": member, "json": body}
    prompt = " ".join(
        rng.choice(("gpu", "sovereign", "region", "token", "model")) for _ in range(40)
    )
    completion = {"model": "bench", "prompt": prompt, "max_tokens": 16}
    return "inference", "POST", "/v1/completions", {"headers": bearer, "json": completion}


async def _client(
    http: aiohttp.ClientSession, bases: Sequence[str], seed: int, world: World,
    seconds: float, tally: Tally,
) -> int:  # fmt: skip
    """Send, wait for the answer, send the next, for ``seconds``; how many were sent."""
    rng = random.Random(seed)
    until, sent = time.monotonic() + seconds, 0
    while time.monotonic() < until:
        await _send(http, bases[(seed + sent) % len(bases)], world, rng, tally)
        sent += 1
    return sent


def _session(connections: int) -> aiohttp.ClientSession:
    """The load generator's HTTP client. aiohttp, not httpx: the generator shares the two
    cores with the replicas, and httpx's client spends 1.2-1.5 ms of CPU per request here
    against aiohttp's 0.35-0.65 ms (see docs/benchmarks.md, bench.gateway). No cookie jar:
    each request carries its own credentials."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=None, connect=TIMEOUT, sock_read=TIMEOUT),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def _send(
    http: aiohttp.ClientSession, base: str, world: World, rng: random.Random, tally: Tally
) -> None:
    kind, method, path, options = _request(world, rng)
    started = time.perf_counter()
    try:
        async with http.request(method, base + path, **options) as answer:
            await answer.read()
        ok, what = answer.status < 400, f"{answer.status} {method} {path}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        ok, what = False, f"{type(exc).__name__} {method} {path}"
    if ok:
        tally.add(kind, (time.perf_counter() - started) * 1000)
    else:
        tally.fail(what)


async def _open_loop(
    bases: Sequence[str], world: World, rate: float, seconds: float
) -> dict[str, Any]:
    """Requests started at a fixed rate whatever the answers take (an open loop: a slow
    server does not slow the arrivals, so queueing shows in the latency)."""
    rng, tally = random.Random(int(rate)), Tally()
    count = max(1, int(rate * seconds))
    async with _session(256) as http:
        started = time.monotonic()
        tasks = []
        for i in range(count):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            base = bases[i % len(bases)]
            tasks.append(asyncio.create_task(_send(http, base, world, rng, tally)))
        await asyncio.gather(*tasks)
        wall = time.monotonic() - started
    return {"target_rps": round(rate, 1), "rps": round(count / wall, 1), **_summary(tally)}


def _summary(tally: Tally) -> dict[str, Any]:
    api = tally.latencies.get("api_read", []) + tally.latencies.get("api_write", [])
    return {
        "p50_ms": round(percentile(api, 50), 1) if api else None,
        "p99_ms": round(percentile(api, 99), 1) if api else None,
        "errors": tally.errors,
        "by_class": {kind: _class(values) for kind, values in sorted(tally.latencies.items())},
        "error_samples": tally.error_samples,
    }


def _class(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
    }


def _served(step: dict[str, Any]) -> bool:
    """Kept up with: 99 % of the offered rate served, and no error."""
    rps: float = step["rps"]
    errors: int = step["errors"]
    return rps >= SERVED * step["target_rps"] and errors == 0


def _within_p99(step: dict[str, Any]) -> bool:
    return step["p99_ms"] is not None and step["p99_ms"] < GOALS["api_p99_ms_max"]


def _with_headroom(step: dict[str, Any]) -> bool:
    """Each replica used at most ``HEADROOM["replica_core_share"]`` of a core, and the VM
    had ``1 - HEADROOM["machine_busy_share"]`` of its CPU free (not known: no headroom)."""
    core: float = step["replica_core_share"]
    busy: float | None = step["machine_busy_share"]
    return core <= HEADROOM["replica_core_share"] and (
        busy is not None and busy <= HEADROOM["machine_busy_share"]
    )


def _headroom_figures(step: dict[str, Any]) -> dict[str, Any]:
    keys = ("rps", "p99_ms", "errors", "replica_core_share", "machine_busy_share")
    return {**{key: step.get(key) for key in keys}, "within_goal": _within_p99(step)}


def choose(saturation: dict[str, Any], sweep: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The level's figures: those of the highest offered rate served in full with no error
    (the highest sustained rate), judged against the goal (API p99 < 100 ms there); and,
    apart, the highest rate that also kept the API p99 under 100 ms, and the highest one
    served with headroom (see ``HEADROOM``)."""
    served = [step for step in sweep if _served(step)]
    best = served[-1] if served else sweep[0]
    calm = [step for step in served if _within_p99(step)]
    roomy = [step for step in served if _with_headroom(step)]
    return {
        "rps": best["rps"],
        "p50_ms": best["p50_ms"],
        "p99_ms": best["p99_ms"],
        "errors": best["errors"],
        "within_goal": _served(best) and _within_p99(best),
        "server_cpu_ms_per_request": best.get("server_cpu_ms_per_request"),
        "rps_within_p99_goal": calm[-1]["rps"] if calm else None,
        "p99_ms_at_that_rate": calm[-1]["p99_ms"] if calm else None,
        "with_headroom": _headroom_figures(roomy[-1]) if roomy else None,
        # Beyond saturation an open loop queues until the client's timeout: counted
        # here, apart from the goal.
        "errors_all_steps": sum(step["errors"] for step in sweep) + saturation["errors"],
        "saturation": saturation,
        "sweep": list(sweep),
    }


async def _level(
    bases: Sequence[str], processes: Processes, world: World, plan: Plan, database_url: str
) -> dict[str, Any]:
    """The saturation throughput (closed loop), then an open-loop sweep at fractions of it
    (see :func:`choose` for the figures reported)."""
    await _warm_up(bases, world, plan)
    saturation = await _with_cpu(processes, _saturation(bases, world, plan), database_url)
    sweep = []
    for fraction in plan.fractions:
        rate = max(1.0, saturation["rps"] * fraction)
        offered = _open_loop(bases, world, rate, plan.step_seconds)
        sweep.append(await _with_cpu(processes, offered, database_url))
        step = sweep[-1]
        write_p99 = step["by_class"].get("api_write", {}).get("p99_ms")
        log(f"    {step['target_rps']} req/s offered: {step['rps']} served, API p99 "
            f"{step['p99_ms']} ms (writes {write_p99}), errors {step['errors']}; replica CPU "
            f"{step['server_cpu_ms_per_request']} ms per request, "
            f"{step['replica_core_share']} of a core each; generator loop late up to "
            f"{step['generator_loop_lag_ms']['max']} ms; machine busy "
            f"{step.get('machine_busy_share')}, steal "
            f"{step.get('machine_steal_share')}; VM CPU by role {_busy_roles(step)}")  # fmt: skip
        if sweep[-1]["rps"] < FAR_BEHIND * sweep[-1]["target_rps"]:
            break  # higher rates only queue longer
    return choose(saturation, sweep)


async def _with_cpu(
    processes: Processes, step: Awaitable[dict[str, Any]], database_url: str
) -> dict[str, Any]:
    """The step's figures, with what the CPU did while it ran (from /proc): the serving
    replicas' CPU time per answered request (``server_cpu_ms_per_request``) and the share
    of a core each used (``replica_core_share``); how busy the whole VM was and the share
    of its time the hypervisor gave to other guests (``machine_busy_share``,
    ``machine_steal_share``; None where /proc/stat cannot be read), and the share of the
    VM's CPU each role took (``cpu_by_role``: replicas, worker, Triton, PostgreSQL, the
    load generator, the rest); how late the generator's own event loop ran
    (``generator_loop_lag_ms``, see ``LoopLag``) and which statements waited on locks in
    the database (``lock_waits``, see ``LockWaits``)."""
    pids = processes.serving
    before, machine_before = _cpu_seconds(pids), machine_cpu_seconds()
    roles_before = processes.snapshot()
    started = time.monotonic()
    lag, locks = LoopLag(), LockWaits(database_url)
    probes = [asyncio.create_task(lag.run()), asyncio.create_task(locks.run())]
    try:
        figures = await step
    finally:
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
    wall = time.monotonic() - started
    figures["generator_loop_lag_ms"] = lag.figures()
    figures["lock_waits"] = locks.figures()
    used, machine_after = _cpu_seconds(pids) - before, machine_cpu_seconds()
    capacity = wall * (os.cpu_count() or 1)
    figures["cpu_by_role"] = cpu_by_role(roles_before, processes.snapshot(), capacity)
    answered = sum(kind["count"] for kind in figures["by_class"].values())
    figures["server_cpu_ms_per_request"] = round(used * 1000 / answered, 2) if answered else None
    # The share of one core each serving replica used over the step (on average).
    figures["replica_core_share"] = round(used / wall / len(pids), 3)
    for key in ("busy", "steal"):
        figures[f"machine_{key}_share"] = None
        if machine_before and machine_after:
            total = machine_after["total"] - machine_before["total"]
            share = (machine_after[key] - machine_before[key]) / total
            figures[f"machine_{key}_share"] = round(share, 3)
    return figures


def _busy_roles(step: dict[str, Any]) -> str:
    shares = sorted(step["cpu_by_role"].items(), key=lambda item: -item[1])
    return ", ".join(f"{role} {share:.0%}" for role, share in shares if share >= 0.01)


def _cpu_seconds(pids: Sequence[int]) -> float:
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


async def _warm_up(bases: Sequence[str], world: World, plan: Plan) -> None:
    """``CLIENTS`` closed-loop clients for ``plan.warmup`` seconds, not counted."""
    async with _session(CLIENTS * 2) as http:
        await asyncio.gather(*(_client(http, bases, i, world, plan.warmup, Tally())
                               for i in range(CLIENTS)))  # fmt: skip


async def _saturation(bases: Sequence[str], world: World, plan: Plan) -> dict[str, Any]:
    """``CLIENTS`` closed-loop clients, each sending its next request when the last
    answered: the most the replicas serve (latency then is mostly queueing)."""
    async with _session(CLIENTS * 2) as http:
        tally = Tally()
        started = time.monotonic()
        sent = await asyncio.gather(*(_client(http, bases, 100 + i, world, plan.seconds, tally)
                                      for i in range(CLIENTS)))  # fmt: skip
        wall = time.monotonic() - started
    return {"rps": round(sum(sent) / wall, 1), "requests": sum(sent), **_summary(tally)}


@contextlib.contextmanager
def _replicas(root: Any, url: str, count: int) -> Iterator[tuple[Server, list[Server]]]:
    """A reconciler worker that takes no traffic, and ``count`` replicas that only serve
    (the chart's reconciler and api/gateway Deployments)."""
    with contextlib.ExitStack() as stack:
        worker = stack.enter_context(
            serve_asgi("control_plane.asgi:app", env=_env(root, url, True))
        )
        servers = [
            stack.enter_context(serve_asgi("control_plane.asgi:app", env=_env(root, url, False)))
            for _ in range(count)
        ]
        yield worker, servers


def run(url: str, plan: Plan, inference_nice: int = 0) -> dict[str, Any]:
    root = VAR_DIR / "load"
    shutil.rmtree(root, ignore_errors=True)
    model_dir = write_tiny_model(root / "models" / REGION, "tiny-chat")
    asyncio.run(reset_postgres_schema(url))
    upgrade(url)
    org_id, key = asyncio.run(setup_database(url))
    levels: dict[str, Any] = {}
    try:
        with _replicas(root, url, 3) as (worker, servers):
            world = asyncio.run(_world(servers[0].base_url, org_id, key, model_dir))
            if inference_nice:
                _renice_inference(root / "triton", inference_nice)
            # The generator's own full collections paused its event loop for ~100 ms
            # (200,000 objects), which every request in flight then counted as latency.
            freeze_startup_heap()
            for count in (1, 2, 3):
                log(f"{count} replica(s): {CLIENTS} clients for {plan.seconds:g} s ...")
                bases = [s.base_url for s in servers[:count]]
                pids = [s.pid for s in servers]
                processes = Processes(tuple(pids[:count]), tuple(pids[count:]), worker.pid,
                                      root / "triton")  # fmt: skip
                levels[str(count)] = asyncio.run(_level(bases, processes, world, plan, url))
                level = levels[str(count)]
                roomy = level["with_headroom"] or {}
                log(
                    f"  highest sustained: {level['rps']} req/s, API p99 {level['p99_ms']} ms, "
                    f"errors {level['errors']}; p99 < 100 ms up to "
                    f"{level['rps_within_p99_goal']} req/s; with headroom: "
                    f"{roomy.get('rps')} req/s at API p99 {roomy.get('p99_ms')} ms"
                )
    finally:
        stop_all(root / "triton")
    return levels


def _renice_inference(triton_dir: Path, nice: int) -> None:
    """Run every Triton server (all processes and threads of its group) at ``nice``."""
    for state in triton_dir.glob("*/state.json"):
        os.setpriority(os.PRIO_PGRP, int(json.loads(state.read_text())["pid"]), nice)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inference-nice",
        type=int,
        default=0,
        help="CPU niceness of the Triton servers (0-19; default 0: same as the replicas)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CP_BENCH_DATABASE_URL"),
        help="PostgreSQL database to use; its public schema is DROPPED and recreated "
        "(default: $CP_BENCH_DATABASE_URL)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv, _options)
    if not args.pg_url or not args.pg_url.startswith("postgresql"):
        log(
            "bench.load needs a PostgreSQL database whose public schema it may drop: "
            "pass --pg-url postgresql://USER@HOST:PORT/DB or set CP_BENCH_DATABASE_URL"
        )
        return 2
    plan = QUICK if args.quick else FULL
    started_load = load_average()
    levels = run(args.pg_url, plan, args.inference_nice)
    result = {
        "benchmark": "load",
        "quick": args.quick,
        "clients_at_saturation": CLIENTS,
        "plan": {
            "saturation_seconds": plan.seconds,
            "step_seconds": plan.step_seconds,
            "fractions": list(plan.fractions),
        },
        "replicas": levels,
        "inference_nice": args.inference_nice,
        "goals": GOALS,
        "goals_met": {
            "errors": all(level["errors"] == 0 for level in levels.values()),
            "api_p99": all(level["within_goal"] for level in levels.values()),
            "with_headroom": all(
                (level["with_headroom"] or {}).get("within_goal", False)
                for level in levels.values()
            ),
        },
        "machine": {**machine_info(), "load_average_at_start": started_load},
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
