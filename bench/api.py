"""API throughput and latency: an authenticated ``GET /api/v1/projects`` (a 50-item page of
an organization with 1,000 projects) at 1 and 50 concurrent clients, on SQLite and
PostgreSQL, against a bare Litestar hello-world served the same way as the baseline.

    python -m bench.api [--quick] [--json FILE] [--pg-url URL] [--profile]

The scored request signs in with a session cookie: an API key acts inside one project, so
its list would hold one project, not a page of 50. The API-key path is measured too (at 50
clients) and reported beside the scored numbers.

Goals (from the issue): ours >= 50 % of the bare framework's requests/s at 50 clients,
and p99 < 25 ms at 50 clients. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from bench.common import (
    VAR_DIR,
    ProfilerError,
    ServerError,
    load_average,
    log,
    machine_info,
    parse_args,
    record_profile,
    reset_postgres_schema,
    serve_asgi,
    summarize_profile,
)
from bench.common import write_json as write_result
from bench.loadgen import LoadResult, Tool, available_tool, run_load
from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.migrate import upgrade
from control_plane.identity.accounts import start_session
from control_plane.identity.models import ApiKey, Membership, Organization, Project, User
from control_plane.identity.roles import TENANT_GRANTS, TenantRole
from control_plane.identity.secrets import new_api_key, token_digest
from control_plane.ids import new_id

PROJECTS = 1_000
PAGE_SIZE = 50
PATH = f"/api/v1/projects?limit={PAGE_SIZE}"
GOALS = {"auth_list_ratio_min": 0.5, "p99_ms_at_50_max": 25.0}
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class BenchmarkError(RuntimeError):
    """The app did not answer what the benchmark asks for; the numbers would lie."""


@dataclass(frozen=True)
class Plan:
    warmup: int
    duration: int
    concurrencies: tuple[int, ...] = (1, 50)


QUICK = Plan(warmup=1, duration=3)
FULL = Plan(warmup=2, duration=10)


@dataclass(frozen=True)
class Credentials:
    session_token: str
    api_key: str


# --- preparing a database -------------------------------------------------------------


def prepare_database(url: str) -> Credentials:
    """Empty schema, migrations, then one org with 1,000 projects, a user and an API key."""
    if not url.startswith("sqlite"):
        asyncio.run(reset_postgres_schema(url))
    upgrade(url)
    return asyncio.run(_seed(url))


async def _seed(url: str) -> Credentials:
    engine = make_engine(url)
    clock = Clock()
    now = clock.now()
    try:
        async with make_sessionmaker(engine)() as db:
            org = Organization(id=new_id("org"), slug="bench", name="Bench", created_at=now)
            user = User(
                id=new_id("usr"),
                email="bench@bench.example",
                name="Bench",
                password_hash=None,
                is_active=True,
                failed_logins=0,
                created_at=now,
            )
            db.add_all([org, user])
            await db.flush()
            db.add(
                Membership(
                    id=new_id("mem"),
                    org_id=org.id,
                    user_id=user.id,
                    role=TenantRole.ADMIN,
                    created_at=now,
                )
            )
            projects = [
                Project(
                    id=new_id("prj"),
                    org_id=org.id,
                    slug=f"project-{i:04d}",
                    name=f"Project {i:04d}",
                    description="A project created by the API benchmark.",
                    created_at=now,
                )
                for i in range(PROJECTS)
            ]
            db.add_all(projects)
            await db.flush()
            prefix, secret = new_api_key()
            db.add(
                ApiKey(
                    id=new_id("key"),
                    org_id=org.id,
                    project_id=projects[0].id,
                    name="bench",
                    prefix=prefix,
                    secret_hash=token_digest(secret),
                    role=TenantRole.ADMIN,
                    scopes=sorted(TENANT_GRANTS[TenantRole.ADMIN]),
                    created_by=user.id,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                )
            )
            session = await start_session(db, clock, user, "password", 86_400, None)
            await db.commit()
    finally:
        await engine.dispose()
    return Credentials(session_token=session.token, api_key=secret)


# --- measuring ------------------------------------------------------------------------


def check_page(url: str, headers: Mapping[str, str], expected_items: int) -> None:
    """Fail loudly unless the endpoint answers the page we mean to measure."""
    response = httpx.get(url, headers=dict(headers), timeout=10)
    if response.status_code != 200:
        raise BenchmarkError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    items = len(body.get("items", []))
    if items != expected_items:
        raise BenchmarkError(f"GET {url} returned {items} items, expected {expected_items}")
    if expected_items == PAGE_SIZE and not body.get("next_cursor"):
        raise BenchmarkError(f"GET {url} returned no next_cursor out of {PROJECTS} projects")


def measure(
    tool: Tool, url: str, headers: Mapping[str, str], plan: Plan, label: str, pid: int
) -> dict[str, LoadResult]:
    points = {}
    for connections in plan.concurrencies:
        log(f"  {label}: {connections} client(s), {plan.warmup}+{plan.duration} s ...")
        points[f"c{connections}"] = run_load(
            tool, url, headers, connections, plan.duration, plan.warmup, pid
        )
    return points


@dataclass(frozen=True)
class Run:
    """How this run measures: the load tool, the durations and the baseline's URL."""

    tool: Tool
    plan: Plan
    hello_url: str
    hello_pid: int


def check_hello(url: str) -> None:
    response = httpx.get(url, timeout=10)
    if response.status_code != 200:
        raise BenchmarkError(f"hello-world answered {response.status_code}")


def bench_database(name: str, url: str, run: Run, profile_to: Path | None) -> dict[str, Any]:
    """Measure the baseline, then our endpoint, back to back so both see the same load."""
    log(f"{name}: preparing {PROJECTS} projects")
    try:
        credentials = prepare_database(url)
    except (OSError, SQLAlchemyError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        raise BenchmarkError(
            f"cannot prepare {shown}: {type(exc).__name__}: {exc} "
            "(pass --pg-url, or --databases sqlite)"
        ) from exc
    env = {"CP_DATABASE_URL": url, "CP_LOG_LEVEL": "WARNING"}
    with serve_asgi("control_plane.asgi:app", env=env) as server:
        endpoint = server.base_url + PATH
        session = {"Cookie": f"cp_session={credentials.session_token}"}
        api_key = {"Authorization": f"Bearer {credentials.api_key}"}
        check_page(endpoint, session, PAGE_SIZE)
        # An API key acts inside its own project, so its list holds exactly that one.
        check_page(endpoint, api_key, 1)
        baseline = measure(run.tool, run.hello_url, {}, run.plan, "hello (baseline)", run.hello_pid)
        points = measure(run.tool, endpoint, session, run.plan, name, server.pid)
        key_plan = Plan(run.plan.warmup, run.plan.duration, (max(run.plan.concurrencies),))
        key_points = measure(run.tool, endpoint, api_key, key_plan, f"{name} (API key)", server.pid)
        profile = None
        if profile_to is not None:
            profile = profile_server(server.pid, run, endpoint, session, profile_to)
    result: dict[str, Any] = {"baseline": baseline, **points, "api_key": key_points}
    if profile is not None:
        result["profile"] = profile
    return result


# --- profiling ------------------------------------------------------------------------

# Phases of our request, as shares of the server's Python time. A sample counts for every
# phase one of its frames belongs to; code run in SQLAlchemy's greenlets or Litestar's
# dependency tasks is sampled without the frames of the request that awaits it, so phases
# are matched on the frames that do the work, not on their callers.
PROFILE_PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HTTP parsing and writing (uvicorn, h11)", ("h11/", "H11Protocol.")),
    ("authentication + authorization guard", ("authentication.py", "authorization_guard")),
    ("dependency resolution (Litestar DI, anyio)", ("litestar/_kwargs/", "anyio/")),
    ("repository: build the SELECT and await it", ("(control_plane/identity/repository.py",)),
    ("statement execution (SQLAlchemy engine + driver)", ("sqlalchemy/engine/", "asyncpg/")),
    ("ORM row loading", ("sqlalchemy/orm/loading.py",)),
    ("session begin/commit/close", ("Session.commit", "Session.close", "_connection_for_bind")),
    ("response serialization + send", ("litestar/response/", "msgspec")),
    ("access log + metrics", ("_log_access",)),
)


def profile_server(
    pid: int, run: Run, url: str, headers: Mapping[str, str], output: Path
) -> dict[str, Any]:
    """Sample the server with py-spy under the 50-client load (a separate, unscored run)."""
    seconds = run.plan.duration + run.plan.warmup
    log(f"  profiling with py-spy for {seconds} s -> {output}")
    try:
        with record_profile(pid, seconds, output):
            load = run_load(run.tool, url, headers, max(run.plan.concurrencies), seconds, 0)
    except ProfilerError as exc:
        raise BenchmarkError(str(exc)) from exc
    summary = summarize_profile(output, PROFILE_PHASES)
    return {"file": str(output), "rps_while_sampling": round(load.rps, 1), **summary}


# --- report ---------------------------------------------------------------------------


def build_result(
    quick: bool, tool: Tool, databases: dict[str, dict[str, Any]], started_load: list[float]
) -> dict[str, Any]:
    """The result file; each database's ratio uses the baseline measured just before it."""
    top = f"c{max(QUICK.concurrencies)}"
    per_db: dict[str, Any] = {}
    for name, points in databases.items():
        bare_rps = points["baseline"][top].rps
        ours: LoadResult = points[top]
        measured = [points[k] for k in points if _is_point(k)] + list(points["api_key"].values())
        per_db[name] = {
            **{k: v.summary() for k, v in points.items() if _is_point(k)},
            "baseline": {k: v.summary() for k, v in points["baseline"].items()},
            "api_key": {k: v.summary() for k, v in points["api_key"].items()},
            "auth_list_ratio": round(ours.rps / bare_rps, 3),
            "cpu_ratio": _cpu_ratio(points["baseline"][top], ours),
            "p99_ms_at_50": round(ours.p99_ms, 3),
            "errors": sum(p.errors for p in measured),
            **({"profile": points["profile"]} if "profile" in points else {}),
        }
    ratio = {name: db["auth_list_ratio"] for name, db in per_db.items()}
    p99 = {name: db["p99_ms_at_50"] for name, db in per_db.items()}
    return {
        "benchmark": "api",
        "quick": quick,
        "tool": tool,
        "request": f"GET {PATH} (session cookie; {PROJECTS} projects in the org)",
        # The first baseline measured; every database also keeps its own adjacent one.
        "baseline": next(iter(per_db.values()))["baseline"],
        "databases": per_db,
        "auth_list_ratio": ratio,
        "p99_ms_at_50": p99,
        "goals": GOALS,
        "goals_met": {
            name: ratio[name] >= GOALS["auth_list_ratio_min"]
            and p99[name] < GOALS["p99_ms_at_50_max"]
            for name in per_db
        },
        "machine": {
            **machine_info(),
            "load_average_at_start": started_load,
            "note": "client and server share the same cores",
        },
    }


def _is_point(key: str) -> bool:
    """``c1``, ``c50``: a measured concurrency, as opposed to the other per-database keys."""
    return key[:1] == "c" and key[1:].isdigit()


def _cpu_ratio(bare: LoadResult, ours: LoadResult) -> float | None:
    """Bare CPU per request over ours: the ratio requests/s would have on an idle,
    server-bound machine (steadier than the measured ratio when the cores are shared)."""
    if not bare.server_cpu_ms or not ours.server_cpu_ms:
        return None
    return round(bare.server_cpu_ms / ours.server_cpu_ms, 3)


def print_table(result: dict[str, Any]) -> None:
    rows = []
    for name, db in result["databases"].items():
        rows += [(f"hello, before {name}", c, p) for c, p in db["baseline"].items()]
        rows += [(name, c, db[c]) for c in db if _is_point(c)]
        rows += [(f"{name} API key", c, p) for c, p in db["api_key"].items()]
    print(f"\napi benchmark ({'quick' if result['quick'] else 'full'}, {result['tool']})")
    print(
        f"{'target':<24}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'cpu ms/req':>12}"
    )
    for target, conc, p in rows:
        errors = p["non2xx"] + p["socket_errors"]
        cpu = p.get("server_cpu_ms")
        print(
            f"{target:<24}{conc.lstrip('c'):>8}{p['rps']:>10.0f}"
            f"{p['p50_ms']:>9.2f}{p['p99_ms']:>9.2f}{errors:>8}"
            f"{'-' if cpu is None else f'{cpu:.3f}':>12}"
        )
    goals = result["goals"]
    for name in result["databases"]:
        ratio, p99 = result["auth_list_ratio"][name], result["p99_ms_at_50"][name]
        verdict = "meets" if result["goals_met"][name] else "MISSES"
        cpu_ratio = result["databases"][name]["cpu_ratio"]
        print(
            f"{name}: ratio {ratio:.2f} (goal >= {goals['auth_list_ratio_min']}; "
            f"by CPU per request {cpu_ratio}), "
            f"p99 at 50 {p99:.1f} ms (goal < {goals['p99_ms_at_50_max']:.0f}) -> {verdict} goals"
        )
    print(
        f"load average (1/5/15 min) at start {result['machine']['load_average_at_start']}, "
        f"at end {result['machine']['load_average']}"
    )


# --- entry point ----------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CP_BENCH_DATABASE_URL", DEFAULT_PG_URL),
        help="PostgreSQL database to use; its public schema is DROPPED and recreated "
        "(default: $CP_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        help="comma-separated subset of sqlite,postgres (default: both)",
    )
    parser.add_argument("--tool", choices=["wrk", "python"], help="load generator (default: wrk)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after measuring, sample the server with py-spy under 50 clients "
        "(files in var/bench/)",
    )


def _profile_file(wanted: bool, database: str) -> Path | None:
    return VAR_DIR / f"profile-{database}.txt" if wanted else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(
        "Authenticated GET /api/v1/projects vs a bare Litestar hello-world, on SQLite and "
        "PostgreSQL, at 1 and 50 clients.",
        argv,
        _options,
    )
    plan = QUICK if args.quick else FULL
    tool = available_tool(args.tool)
    names = [n.strip() for n in args.databases.split(",") if n.strip()]
    unknown = set(names) - {"sqlite", "postgres"}
    if unknown or not names:
        raise SystemExit(f"unknown database(s): {sorted(unknown)}; use sqlite,postgres")
    started_load = load_average()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="api-", dir=VAR_DIR))
    urls = {"sqlite": f"sqlite:///{workdir / 'bench.db'}", "postgres": args.pg_url}
    try:
        with serve_asgi("bench.hello:app") as hello:
            run = Run(tool, plan, hello.base_url + "/", hello.pid)
            check_hello(run.hello_url)
            databases = {
                name: bench_database(name, urls[name], run, _profile_file(args.profile, name))
                for name in names
            }
    except (BenchmarkError, ServerError) as exc:
        log(f"api benchmark failed: {exc}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = build_result(args.quick, tool, databases, started_load)
    write_result(args.json, result)
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
