"""Gateway overhead: the same requests sent straight to a Triton replica over gRPC and
through the gateway (API key auth, per-key limits, tokenization with the model's
tokenizer, usage metering), at 1 and 32 concurrent clients.

    python -m bench.gateway [--quick] [--json FILE]

Prompt and output lengths are drawn from the Azure LLM inference trace 2023 (conversation
service, ../shared/data/azure-llm-inference-2023; read in place, never copied): a prompt of
``ContextTokens`` tokens of the model's own vocabulary, ``max_tokens`` = ``GeneratedTokens``
(both capped so a run stays short on CPU). The model is the built-in tiny model (it
generates exactly ``max_tokens`` tokens at once, no delay), so the numbers measure the
serving path, not a language model.

Both paths get the best client for their protocol. Direct: long-lived gRPC streams to
the replica carrying every request under its own id, built on tritonclient's stubs and
result decoding (the gateway's own upstream transport, ``SharedStreams``; a new stream per
request would cost the direct path ~1 ms and flatter the gateway). Through the gateway:
aiohttp, keep-alive (httpx's client spends ~1.2 ms of CPU per request on this VM, which
would count as the gateway's; the 1-client level also reports the figures with httpx,
the OpenAI SDK's transport). The gateway runs as the Helm chart deploys it: a process of
its own with no reconciler, beside the control plane process that deploys the endpoint.

Goals (issue 5): added p50 <= 1 ms, added p99 <= 5 ms, throughput through the gateway >=
80 % of direct at 32 clients, and token counts equal to the tokenizer's own on every
request. JSON keys: added_latency_ms_p50, added_latency_ms_p99, throughput_ratio_at_32,
token_count_mismatches, server_cpu_ms_per_request (the gateway process's CPU time per
request at 1 client: steadier than latency on a shared machine), added_latency_ms_p50_httpx
(plus the raw figures per concurrency).
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import select

from bench.common import (
    VAR_DIR,
    Server,
    log,
    machine_info,
    parse_args,
    percentile,
    serve_asgi,
    write_json,
)
from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.migrate import upgrade
from control_plane.endpoints.gateway.text import ModelText, model_text
from control_plane.endpoints.gateway.upstream import SharedStreams
from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.triton.driver import stop_all
from control_plane.heap import freeze_startup_heap
from control_plane.identity.models import ApiKey, Membership, Project, User
from control_plane.identity.roles import TENANT_GRANTS, TenantRole
from control_plane.identity.secrets import new_api_key, token_digest
from control_plane.ids import new_id
from control_plane.seed.demo import seed_demo

TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "azure-llm-inference-2023"
REGION = "ca-qc-1"
SERVED_MODEL = "bench-v1"  # the endpoint's version 1 as its replica serves it
MAX_PROMPT_TOKENS = 1024
MAX_OUTPUT_TOKENS = 64
GOALS = {"added_p50_ms_max": 1.0, "added_p99_ms_max": 5.0, "throughput_ratio_min": 0.8}


@dataclass(frozen=True)
class Plan:
    requests: int  # per concurrency level and path
    concurrencies: tuple[int, ...] = (1, 32)
    rounds: int = 10  # the paths take turns this many times per level


QUICK = Plan(requests=200, rounds=4)
FULL = Plan(requests=1000)


@dataclass(frozen=True)
class Work:
    prompt: str
    max_tokens: int


def trace_lengths(count: int, seed: int = 7) -> list[tuple[int, int]]:
    """(prompt tokens, output tokens) of ``count`` requests drawn from the trace."""
    with (TRACE / "AzureLLMInferenceTrace_conv.csv").open() as handle:
        rows = [
            (int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in csv.DictReader(handle)
        ]
    rng = random.Random(seed)
    return [rng.choice(rows) for _ in range(count)]


def make_work(model_dir: Path, lengths: Sequence[tuple[int, int]], seed: int = 11) -> list[Work]:
    """Prompts of exactly the drawn number of tokens (whole words of the model's vocabulary)."""
    text = model_text(model_dir)
    vocab = [t for t in text.tokenizer.get_vocab() if t.isalpha() and len(t) > 2]
    rng = random.Random(seed)
    work = []
    for prompt_tokens, output_tokens in lengths:
        target = max(1, min(prompt_tokens, MAX_PROMPT_TOKENS))
        words: list[str] = []
        while text.count(" ".join(words)) < target:
            words.append(rng.choice(vocab))
        work.append(Work(" ".join(words), max(1, min(output_tokens, MAX_OUTPUT_TOKENS))))
    return work


async def setup_database(url: str) -> tuple[str, str]:
    """Demo data and a member API key; returns (org id, key). (Migrate first: upgrade
    runs its own event loop.)"""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            await seed_demo(db, Clock())
            member = (
                await db.execute(User.__table__.select().where(User.email == "member@demo.example"))
            ).one()
            org_id = (
                (
                    await db.execute(
                        Membership.__table__.select().where(Membership.user_id == member.id)
                    )
                )
                .one()
                .org_id
            )
            project_id = (
                await db.execute(select(Project.id).where(Project.org_id == org_id).limit(1))
            ).scalar_one()
            prefix, secret = new_api_key()
            now = datetime.now(UTC)
            db.add(
                ApiKey(
                    id=new_id("key"),
                    org_id=org_id,
                    project_id=project_id,
                    name="bench",
                    prefix=prefix,
                    secret_hash=token_digest(secret),
                    role=TenantRole.MEMBER,
                    scopes=sorted(TENANT_GRANTS[TenantRole.MEMBER]),
                    created_by=None,
                    created_at=now,
                    expires_at=now + timedelta(days=1),
                )
            )
            await db.commit()
    finally:
        await engine.dispose()
    return org_id, secret


async def deploy(http: httpx.AsyncClient, org_id: str, key: str, model_dir: Path) -> str:
    """Create the endpoint and wait for its replica; returns the replica's gRPC address."""
    auth = {"Authorization": f"Bearer {key}"}
    created = await http.post(
        f"/api/v1/orgs/{org_id}/endpoints",
        headers=auth,
        json={
            "name": "bench",
            "region": REGION,
            "model_uri": model_dir.as_uri(),
            "gpu_model": "l40s",
            "gpu_milli": 1000,
        },
    )
    if created.status_code != 201:
        raise RuntimeError(f"endpoint not created: {created.text}")
    for _ in range(600):
        endpoint = (await http.get(f"/api/v1/orgs/{org_id}/endpoints/bench", headers=auth)).json()
        if endpoint["state"] == "ready":
            break
        await asyncio.sleep(0.2)
    else:
        raise RuntimeError(f"endpoint not ready: {endpoint['state']}")
    tenancies = (
        await http.get(
            f"/api/v1/orgs/{org_id}/tenancies",
            headers=auth,
            params={"kind": "inference", "state": "active"},
        )
    ).json()
    return str(tenancies["items"][0]["facts"]["triton_grpc"])


async def direct_call(stream: SharedStreams, work: Work) -> str:
    """What the gateway does upstream for a non-streamed call, without the gateway."""
    answer = await stream.send(
        SERVED_MODEL,
        work.prompt,
        max_tokens=work.max_tokens,
        request_id="direct",
        answer_within=120,
    )
    return await answer


async def run_level(
    call: Callable[[Work], Awaitable[Any]], work: Sequence[Work], clients: int
) -> tuple[list[float], float]:
    """Latencies (ms) of every request and the seconds taken with ``clients`` concurrent
    callers working through ``work``."""
    queue = list(reversed(work))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            item = queue.pop()
            started = time.perf_counter()
            await call(item)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.perf_counter() - started


@dataclass
class PathRun:
    """One path's requests over every round of a level."""

    latencies: list[float]
    seconds: float = 0.0
    server_cpu_s: float = 0.0  # the gateway process's CPU while this path ran

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def server_cpu_ms(self) -> float:
        return self.server_cpu_s * 1000 / len(self.latencies)


async def alternate(
    paths: Mapping[str, Callable[[Work], Awaitable[Any]]],
    work: Sequence[Work],
    clients: int,
    rounds: int,
    server_pid: int,
) -> dict[str, PathRun]:
    """Every path works through ``work`` in ``rounds`` slices, the paths taking turns
    slice by slice (in reversed order every other round). Triton on this VM switches
    between a fast and a slow mode from one minute to the next (1-client p50 3.1 or 5 ms,
    32-client throughput 150 or 320 req/s): paths run one after the other would each
    catch a different mode, paths taking turns catch the same mix. Not request by
    request: a gateway left idle while every other request goes direct comes back to
    cold caches each time (its CPU per request rose from 1.6 to 2.4 ms that way), which is
    not how a gateway serving one client runs."""
    runs = {name: PathRun([]) for name in paths}
    for index in range(rounds):
        part = work[index::rounds]
        order = list(paths.items())
        for name, call in order if index % 2 == 0 else reversed(order):
            cpu_before = cpu_seconds(server_pid)
            latencies, seconds = await run_level(call, part, clients)
            runs[name].server_cpu_s += cpu_seconds(server_pid) - cpu_before
            runs[name].seconds += seconds
            runs[name].latencies.extend(latencies)
    return runs


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process ``pid`` has used (its own, not its
    children's: Triton runs in a process of its own)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    plan: Plan, control: Server, server: Server, org_id: str, key: str, model_dir: Path
) -> dict[str, Any]:
    text = model_text(model_dir)
    work = make_work(model_dir, trace_lengths(plan.requests))
    auth = {"Authorization": f"Bearer {key}"}
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them: a
    # level that runs longer than that (a loaded machine) would otherwise leave the next
    # one a connection the server is closing.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=4)
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=4)
    async with (
        httpx.AsyncClient(base_url=control.base_url, timeout=120, limits=limits) as api,
        httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as http,
        aiohttp.ClientSession(
            base_url=server.base_url,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=120),
        ) as session,
    ):
        upstream = await deploy(api, org_id, key, model_dir)
        freeze_startup_heap()  # no full collection of the set-up's objects mid-run
        answers: list[tuple[Work, Any]] = []
        direct_texts: list[tuple[Work, str]] = []

        def payload(item: Work) -> dict[str, Any]:
            return {"model": "bench", "prompt": item.prompt, "max_tokens": item.max_tokens}

        # Answers are checked after the timed runs: tokenizing here would add the client's
        # own counting (~0.4 ms for a 1,000-token prompt) to the gateway's latency.
        async def via_gateway(item: Work) -> None:
            async with session.post("/v1/completions", headers=auth, json=payload(item)) as got:
                got.raise_for_status()
                answers.append((item, await got.json()))

        async def via_gateway_httpx(item: Work) -> None:
            got = await http.post("/v1/completions", headers=auth, json=payload(item))
            got.raise_for_status()
            answers.append((item, got.json()))

        stream = SharedStreams(upstream)
        try:

            async def direct(item: Work) -> None:
                direct_texts.append((item, await direct_call(stream, item)))

            for call in (direct, via_gateway, via_gateway_httpx):  # warm-up
                await run_level(call, work[:20], 4)
            levels: dict[str, Any] = {}
            for clients in plan.concurrencies:
                paths = {"direct": direct, "gateway": via_gateway}
                if clients == 1:
                    paths["gateway_httpx"] = via_gateway_httpx
                log(f"{clients} client(s): {', '.join(paths)} taking turns {plan.rounds} times")
                runs = await alternate(paths, work, clients, plan.rounds, server.pid)
                direct_ms, gateway_ms = runs["direct"].latencies, runs["gateway"].latencies
                level = levels[str(clients)] = {
                    name: _summary(run.latencies, run.rps) for name, run in runs.items()
                }
                level |= {
                    "added_ms_p50": _added(gateway_ms, direct_ms, 50),
                    "added_ms_p99": _added(gateway_ms, direct_ms, 99),
                    "throughput_ratio": round(runs["gateway"].rps / runs["direct"].rps, 3),
                    "server_cpu_ms_per_request": round(runs["gateway"].server_cpu_ms, 3),
                }
                if "gateway_httpx" in runs:
                    level["added_ms_p50_httpx"] = _added(
                        runs["gateway_httpx"].latencies, direct_ms, 50
                    )
        finally:
            await stream.close()
    one, many = levels["1"], levels[str(max(plan.concurrencies))]
    return {
        "added_latency_ms_p50": one["added_ms_p50"],
        "added_latency_ms_p99": one["added_ms_p99"],
        "throughput_ratio_at_32": many["throughput_ratio"],
        "server_cpu_ms_per_request": one["server_cpu_ms_per_request"],
        "added_latency_ms_p50_httpx": one["added_ms_p50_httpx"],
        "token_count_mismatches": _mismatches(text, answers),
        "answers_differing": _differing(
            [*direct_texts, *((item, body["choices"][0]["text"]) for item, body in answers)]
        ),
        "requests_checked": len(answers),
        "levels": levels,
    }


def _added(gateway: list[float], direct: list[float], q: float) -> float:
    return round(percentile(gateway, q) - percentile(direct, q), 3)


def _mismatches(text: ModelText, answers: Sequence[tuple[Work, Any]]) -> int:
    """Answers (the warm-up's too) whose usage differs from the tokenizer's own count."""
    wrong = 0
    for item, body in answers:
        usage = body["usage"]
        if usage["prompt_tokens"] != text.count(item.prompt) or usage[
            "completion_tokens"
        ] != text.count(body["choices"][0]["text"]):
            wrong += 1
    return wrong


def _differing(texts: Sequence[tuple[Work, str]]) -> int:
    """Answers unlike the first answer to the same request (direct or through the
    gateway, at any level). The tiny model's answer is a function of the prompt: a
    difference means an answer was cut short or altered (a cut generation is faster, and
    would flatter the throughput)."""
    seen: dict[tuple[str, int], str] = {}
    differing = 0
    for item, text in texts:
        first = seen.setdefault((item.prompt, item.max_tokens), text)
        differing += first != text
    return differing


def _summary(latencies: list[float], rps: float) -> dict[str, float]:
    return {
        "rps": round(rps, 1),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__ or "", argv)
    plan = QUICK if args.quick else FULL
    root = VAR_DIR / "gateway"
    shutil.rmtree(root, ignore_errors=True)
    model_dir = write_tiny_model(root / "models" / REGION, "tiny-chat")
    url = f"sqlite:///{root / 'bench.db'}"
    upgrade(url)
    org_id, key = asyncio.run(setup_database(url))
    env = {
        "CP_DATABASE_URL": url,
        "CP_MODEL_STORE_ROOT": str(root / "models"),
        "CP_TRITON_DIR": str(root / "triton"),
        "CP_KEY_DIR": str(root / "keys"),
        "CP_SIM_DIR": str(root / "sim"),
        "CP_RECONCILE_INTERVAL_SECONDS": "0.2",
        "CP_AUTOSCALE_ENABLED": "false",
        "CP_LOG_LEVEL": "WARNING",
        "CP_GATEWAY_REQUESTS_PER_SECOND": "1000000",
        "CP_GATEWAY_TOKENS_PER_MINUTE": "1000000000",
        "CP_ENVIRONMENT": "development",
        "CP_COOKIE_SECURE": "false",
    }
    # The gateway as the Helm chart runs it: its own process, no reconciler.
    gateway_env = {**env, "CP_RECONCILER_ENABLED": "false"}
    with (
        serve_asgi("control_plane.asgi:app", env=env) as control,
        serve_asgi("control_plane.asgi:app", env=gateway_env) as gateway,
    ):
        try:
            result = asyncio.run(measure(plan, control, gateway, org_id, key, model_dir))
        finally:
            stop_all(root / "triton")
    result.update(
        goals=GOALS,
        plan={
            "requests": plan.requests,
            "concurrencies": list(plan.concurrencies),
            "rounds": plan.rounds,
        },
        machine=machine_info(),
        quick=args.quick,
    )
    log(
        f"added p50 {result['added_latency_ms_p50']} ms, p99 {result['added_latency_ms_p99']} ms; "
        f"throughput ratio at 32: {result['throughput_ratio_at_32']}; "
        f"token count mismatches: {result['token_count_mismatches']}; "
        f"server CPU per request at 1 client: {result['server_cpu_ms_per_request']} ms; "
        f"added p50 with httpx as the client: {result['added_latency_ms_p50_httpx']} ms"
    )
    write_json(args.json, result)


if __name__ == "__main__":
    main()
