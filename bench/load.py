"""Load test: a mixed workload against 1, 2 and 3 control-plane replicas on one PostgreSQL.

    python -m bench.load [--quick] --json FILE --pg-url postgresql://USER@HOST:PORT/DB

Bounded and loopback-only. The database's public schema is dropped and recreated; the
demo data is seeded and an inference endpoint on the built-in tiny model is deployed (a
real Triton server, started by the first replica's reconciler). Replica 1 serves and
reconciles; replicas 2 and 3 only serve (as the Helm chart runs API/gateway pods apart from
the reconciler workers). For each replica count, ``CLIENTS`` closed-loop clients spread
round-robin over the replicas send, for a fixed time, a mix of:

- portal pages (``/tenancies``, ``/insights``, ``/usage``... as the signed-in demo member),
- tenancy API calls (list, read, events; a schedule change: an audited write),
- inference requests through the gateway (``/v1/completions``, 16 output tokens).

Reported per replica count (JSON key ``replicas``: ``"1"|"2"|"3"`` -> ``rps`` (all
requests), ``p50_ms`` and ``p99_ms`` (the API calls'), ``errors`` (non-2xx answers and failed
connections), plus per-class detail). Goal (issue 9): zero errors, API p99 < 100 ms at the
highest sustained rate. On a 2-vCPU machine the replicas share the same two cores with
Triton and the load generator, so more replicas cannot add throughput here; the figures
show what holds (errors, tail latency), not horizontal scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import (
    VAR_DIR,
    Server,
    load_average,
    log,
    machine_info,
    parse_args,
    percentile,
    reset_postgres_schema,
    serve_asgi,
    write_json,
)
from bench.gateway import deploy, setup_database
from control_plane.db.migrate import upgrade
from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.triton.driver import stop_all

REGION = "ca-qc-1"
CLIENTS = 12
GOALS = {"errors_max": 0, "api_p99_ms_max": 100.0}
PAGES = ("/tenancies", "/insights", "/endpoints", "/")
MEMBER = {"email": "member@demo.example", "password": "demo-member-pass"}
KINDS = ("vm", "kubernetes", "slurm")


@dataclass(frozen=True)
class Plan:
    seconds: float  # measured time per replica count
    warmup: float = 3.0


QUICK = Plan(seconds=8.0, warmup=2.0)
FULL = Plan(seconds=30.0)


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


def _env(root: Any, url: str, reconcile: bool) -> dict[str, str]:
    return {
        "CP_DATABASE_URL": url,
        "CP_MODEL_STORE_ROOT": str(root / "models"),
        "CP_TRITON_DIR": str(root / "triton"),
        "CP_KEY_DIR": str(root / "keys"),
        "CP_SIM_DIR": str(root / "sim"),
        "CP_RECONCILER_ENABLED": "true" if reconcile else "false",
        "CP_RECONCILE_INTERVAL_SECONDS": "0.2",
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
    """(class, method, path, httpx options) of one request of the mix."""
    roll = rng.random()
    tenancy = rng.choice(world.tenancy_ids)
    base = f"/api/v1/orgs/{world.org_id}/tenancies"
    bearer = {"Authorization": f"Bearer {world.key}"}  # the project key that calls models
    member = world.session  # the organization's tenancies are not the project key's
    if roll < 0.3:
        return "page", "GET", rng.choice(PAGES), {"headers": {"Cookie": member["Cookie"]}}
    if roll < 0.45:
        return "api", "GET", base, {"headers": member, "params": {"limit": "20"}}
    if roll < 0.6:
        return "api", "GET", f"{base}/{tenancy}", {"headers": member}
    if roll < 0.68:
        return "api", "GET", f"{base}/{tenancy}/events", {"headers": member}
    if roll < 0.72:
        body = {"idle_release_minutes": rng.choice([None, 60, 120])}
        return "api", "POST", f"{base}/{tenancy}/schedule", {"headers": member, "json": body}
    prompt = " ".join(
        rng.choice(("gpu", "sovereign", "region", "token", "model")) for _ in range(40)
    )
    body = {"model": "bench", "prompt": prompt, "max_tokens": 16}
    return "inference", "POST", "/v1/completions", {"headers": bearer, "json": body}


async def _client(
    http: httpx.AsyncClient, bases: Sequence[str], offset: int, world: World,
    until: float, tally: Tally | None, seed: int,
) -> int:  # fmt: skip
    rng = random.Random(seed)
    sent = 0
    while time.monotonic() < until:
        kind, method, path, options = _request(world, rng)
        base = bases[(offset + sent) % len(bases)]
        started = time.perf_counter()
        try:
            answer = await http.request(method, base + path, **options)
            ok = answer.status_code < 400
            what = f"{answer.status_code} {method} {path}"
        except httpx.HTTPError as exc:
            ok, what = False, f"{type(exc).__name__} {method} {path}"
        elapsed = (time.perf_counter() - started) * 1000
        sent += 1
        if tally is None:
            continue
        if ok:
            tally.add(kind, elapsed)
        else:
            tally.fail(what)
    return sent


async def _level(bases: Sequence[str], world: World, plan: Plan) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        until = time.monotonic() + plan.warmup
        await asyncio.gather(*(_client(http, bases, i, world, until, None, i)
                               for i in range(CLIENTS)))  # fmt: skip
        tally = Tally()
        started = time.monotonic()
        until = started + plan.seconds
        sent = await asyncio.gather(*(_client(http, bases, i, world, until, tally, 100 + i)
                                      for i in range(CLIENTS)))  # fmt: skip
        wall = time.monotonic() - started
    api = tally.latencies.get("api", [])
    return {
        "rps": round(sum(sent) / wall, 1),
        "p50_ms": round(percentile(api, 50), 1) if api else None,
        "p99_ms": round(percentile(api, 99), 1) if api else None,
        "errors": tally.errors,
        "requests": sum(sent),
        "by_class": {
            kind: {
                "count": len(values),
                "p50_ms": round(percentile(values, 50), 1),
                "p99_ms": round(percentile(values, 99), 1),
            }
            for kind, values in sorted(tally.latencies.items())
        },
        "error_samples": tally.error_samples,
    }


@contextlib.contextmanager
def _replicas(root: Any, url: str, count: int) -> Iterator[list[Server]]:
    """Replica 1 reconciles; the others only serve."""
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(serve_asgi("control_plane.asgi:app", env=_env(root, url, i == 0)))
            for i in range(count)
        ]
        yield servers


def run(url: str, plan: Plan) -> dict[str, Any]:
    root = VAR_DIR / "load"
    shutil.rmtree(root, ignore_errors=True)
    model_dir = write_tiny_model(root / "models" / REGION, "tiny-chat")
    asyncio.run(reset_postgres_schema(url))
    upgrade(url)
    org_id, key = asyncio.run(setup_database(url))
    levels: dict[str, Any] = {}
    try:
        with _replicas(root, url, 3) as servers:
            world = asyncio.run(_world(servers[0].base_url, org_id, key, model_dir))
            for count in (1, 2, 3):
                log(f"{count} replica(s): {CLIENTS} clients for {plan.seconds:g} s ...")
                bases = [s.base_url for s in servers[:count]]
                levels[str(count)] = asyncio.run(_level(bases, world, plan))
                level = levels[str(count)]
                log(f"  {level['rps']} req/s, API p99 {level['p99_ms']} ms, "
                    f"errors {level['errors']}")  # fmt: skip
    finally:
        stop_all(root / "triton")
    return levels


def _options(parser: argparse.ArgumentParser) -> None:
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
    levels = run(args.pg_url, plan)
    result = {
        "benchmark": "load",
        "quick": args.quick,
        "clients": CLIENTS,
        "seconds_per_level": plan.seconds,
        "replicas": levels,
        "goals": GOALS,
        "goals_met": {
            "errors": all(level["errors"] == 0 for level in levels.values()),
            "api_p99": all(
                (level["p99_ms"] or 0) < GOALS["api_p99_ms_max"] for level in levels.values()
            ),
        },
        "machine": {**machine_info(), "load_average_at_start": started_load},
    }
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
