"""Placement: fragmentation on the Alibaba GPU trace, and decisions per second.

    python -m bench.placement [--quick] [--seeds 42,43] [--trace-dir DIR] [--policies ...]
                              [--skip-fragmentation] [--skip-throughput] [--skip-api]
                              [--pg-url URL] [--json FILE]

1. Fragmentation (the ATC'23 "Beware of Fragmentation" experiment, method in
   ../shared/design/PLACEMENT-BENCH.md): the 1,213 GPU nodes of
   ``openb_node_list_gpu_node.csv`` receive the pods of ``openb_pod_list_default.csv``,
   shuffled per seed, followed by random clones until the GPU requested reaches 130 % of
   the cluster's GPUs; each pod is placed once, in order, and nothing leaves. Reported per
   policy: the GPU capacity left unallocated (%) at 130 % (and 100 %) arrived load, the
   mean over the seeds (42-51; ``--quick`` one seed), and a fidelity check of the
   baselines against the paper's published means.
2. Throughput (``decisions_per_s``): a synthetic fleet of 10,000 nodes x 8 GPUs in four
   regions, filled to 80 % and kept there by a mixed stream of requests (shares,
   1/2/4/8 GPUs, whole nodes, multi-node) that are placed, committed and released again
   at random; only ``place`` is timed, with the default policy.
3. Synthetic variants (full run only, or ``--variants on``): the published pod-list
   variants (CPU-heavy, GPU-sharing-heavy, multi-GPU-heavy, GPU-type-constrained) are not
   on this machine, so the default list is resampled in memory to stress each kind, and
   best-fit, FGD and ours are replayed on the first three seeds.
4. API creates (``api_creates_per_s``; ``--skip-api`` leaves it out): tenancy creates
   per second end to end, through the real server on PostgreSQL (``--pg-url``, whose
   public schema is DROPPED; see bench/tenancy_creates.py).

The trace is read from ``--trace-dir`` (default ``../shared/data/alibaba-gpu-v2023`` next
to the repository) and never copied. See docs/benchmarks.md and docs/placement.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, load_average, log, machine_info, parse_args, write_json
from bench.tenancy_creates import DEFAULT_PG_URL, api_creates
from control_plane.placement import (
    FULL_GPU,
    GpuFree,
    NodeState,
    Placement,
    Pool,
    Request,
    Workload,
    place,
    typical_workload,
)

DEFAULT_TRACE_DIR = REPO_ROOT.parent / "shared" / "data" / "alibaba-gpu-v2023"
NODE_FILE = "openb_node_list_gpu_node.csv"
POD_FILE = "openb_pod_list_default.csv"
SEEDS = tuple(range(42, 52))
QUICK_SEEDS = (42,)
TUNE_RATIO = 1.3
POLICIES = ("random", "best_fit", "dot_product", "clustering", "packing", "fgd", "ours")
# Published means over seeds 42-51 at 130 % arrived load (analysis_allo_discrete.csv of
# the authors' simulator, workload openb_pod_list_default).
PUBLISHED_AT_130 = {
    "random": 12.53,
    "dot_product": 9.15,
    "clustering": 8.12,
    "packing": 8.00,
    "best_fit": 6.92,
    "fgd": 4.61,
}
PUBLISHED_AT_100 = {
    "random": 13.70,
    "dot_product": 9.38,
    "clustering": 8.35,
    "packing": 8.22,
    "best_fit": 7.14,
    "fgd": 4.77,
}
FIDELITY_TOLERANCE = 1.5
OTHER_VARIANTS = (
    "cpu0, cpu037, cpu050, cpu072, cpu100, cpu200, cpu235, cpu250, cpu300, gpushare20, "
    "gpushare40, gpushare60, gpushare80, gpushare100, multigpu20, multigpu30, multigpu40, "
    "multigpu50, gpuspec05, gpuspec10, gpuspec20, gpuspec25, gpuspec33"
)
THROUGHPUT_NODES = 10_000
GOAL_DECISIONS_PER_S = 1000
ONE_SHOT_NODES = 3000  # place() builds a throwaway pool: the API's one decision
REGION = "trace"


# ---- the trace -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass(frozen=True, slots=True)
class TracePod:
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int  # per GPU, 0 for a CPU-only pod
    gpu_spec: tuple[str, ...] = ()

    @property
    def gpu_total(self) -> int:
        return self.num_gpu * self.gpu_milli

    def request(self) -> Request:
        return Request(
            regions=(REGION,),
            gpu_models=self.gpu_spec,
            gpu_count=self.num_gpu,
            gpu_milli=self.gpu_milli if self.num_gpu == 1 else FULL_GPU,
            cpu_milli=self.cpu_milli,
            memory_mib=self.memory_mib,
        )


POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec")


def _rows(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """CSV rows as dicts; a file without a header row is read by position."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    if columns[0] in header:
        return [dict(zip(header, row, strict=False)) for row in rows[1:] if row]
    return [dict(zip(columns, row, strict=False)) for row in rows if row]


def _int(value: str | None) -> int:
    value = (value or "").strip()
    return int(float(value)) if value else 0


def load_nodes(path: Path) -> list[TraceNode]:
    """GPU nodes of a node list (``sn,cpu_milli,memory_mib,gpu,model``)."""
    nodes = []
    for row in _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model")):
        gpus = _int(row.get("gpu"))
        if gpus > 0:
            nodes.append(
                TraceNode(
                    row["sn"],
                    _int(row.get("cpu_milli")),
                    _int(row.get("memory_mib")),
                    gpus,
                    (row.get("model") or "").strip(),
                )
            )
    return nodes


def load_pods(path: Path) -> list[TracePod]:
    """Pods of any of the trace's pod-list layouts: the full eleven columns or only the
    first five (``name,cpu_milli,memory_mib,num_gpu,gpu_milli``), with or without a
    header. As the paper's converter does, only the resources are kept; a GPU pod's
    ``gpu_milli`` is clamped to 1..1000 (0 or missing meaning a whole GPU)."""
    pods = []
    for row in _rows(path, POD_COLUMNS):
        num_gpu = _int(row.get("num_gpu"))
        milli = _int(row.get("gpu_milli"))
        if num_gpu == 0:
            milli = 0
        elif not 0 < milli <= FULL_GPU:
            milli = FULL_GPU
        spec = tuple(s.strip() for s in (row.get("gpu_spec") or "").split("|") if s.strip())
        pods.append(
            TracePod(
                row["name"],
                _int(row.get("cpu_milli")),
                _int(row.get("memory_mib")),
                num_gpu,
                milli,
                spec,
            )
        )
    return pods


# ---- the experiment --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    """One seed's input: the pods in arrival order and the nodes in tie-break order."""

    pods: list[TracePod]
    nodes: list[NodeState]
    capacity_milli: int


def build_run(nodes: Sequence[TraceNode], pods: Sequence[TracePod], seed: int) -> Run:
    """The seeded workload of PLACEMENT-BENCH.md, steps 1-4 (a Python generator stands in
    for Go's ``math/rand``): shuffle the name-sorted pods, append clones drawn from the
    name-sorted list until the GPU requested would pass 130 % of capacity (testing the
    per-GPU milli, the simulator's quirk), and rank the nodes by a random permutation,
    which breaks score ties."""
    rng = random.Random(seed)  # a seeded simulation, not security
    rng.random()  # the simulator spends one draw before shuffling
    by_name = sorted(pods, key=lambda p: p.name)
    order = list(by_name)
    rng.shuffle(order)
    capacity = FULL_GPU * sum(n.gpus for n in nodes)
    target = TUNE_RATIO * capacity
    total = sum(p.gpu_total for p in order)
    while total < target:
        pick = by_name[rng.randrange(len(by_name))]
        if total + pick.gpu_milli > target:
            break
        order.append(pick)
        total += pick.gpu_total
    sorted_nodes = sorted(nodes, key=lambda n: n.name)
    perm = list(range(len(sorted_nodes)))
    rng.shuffle(perm)
    ranked = sorted(zip(perm, sorted_nodes, strict=True), key=lambda pn: pn[0])
    states = [_node_state(n) for _, n in ranked]
    return Run(order, states, capacity)


def _node_state(node: TraceNode) -> NodeState:
    return NodeState(
        id=node.name,
        region=REGION,
        rack="r0",
        gpu_model=node.model,
        gpus=tuple(GpuFree(i, FULL_GPU) for i in range(node.gpus)),
        cpu_free_milli=node.cpu_milli,
        memory_free_mib=node.memory_mib,
    )


def trace_workload(pods: Iterable[TracePod]) -> Workload:
    """FGD's target workload: the typical pods of the original list (95 % coverage)."""
    return typical_workload((p.cpu_milli, p.gpu_milli, p.num_gpu, p.gpu_spec) for p in pods)


# ---- synthetic stand-ins for the pod-list variants ---------------------------------------
VARIANT_KINDS = ("cpu", "gpushare", "multigpu", "gpuspec")


def _kind(pod: TracePod) -> str:
    if pod.num_gpu == 0:
        return "cpu"
    if pod.num_gpu >= 2:
        return "multigpu"
    return "gpushare" if pod.gpu_milli < FULL_GPU else "whole"


def synthetic_variant(
    pods: Sequence[TracePod], nodes: Sequence[TraceNode], kind: str, share: float, seed: int
) -> list[TracePod]:
    """A resample of the default pod list in which ``share`` of the pods are of ``kind``
    (CPU-only, GPU-sharing, multi-GPU) or, for ``gpuspec``, carry a GPU-model constraint
    (one model, drawn by GPU count). It stands in for the published variants, which are
    not on this machine; it is not one of them. Pods are drawn until the GPU requested
    reaches the default list's 98 % of capacity."""
    rng = random.Random(seed)  # a seeded simulation
    capacity = FULL_GPU * sum(n.gpus for n in nodes)
    goal = sum(p.gpu_total for p in pods) / capacity
    stressed = [p for p in pods if _kind(p) == kind] if kind != "gpuspec" else []
    rest = [p for p in pods if _kind(p) != kind] if kind != "gpuspec" else list(pods)
    models = [n.model for n in nodes for _ in range(n.gpus)]
    out: list[TracePod] = []
    total = 0
    while total < goal * capacity:
        pick = rng.choice(stressed) if stressed and rng.random() < share else rng.choice(rest)
        spec = pick.gpu_spec
        if kind == "gpuspec" and pick.num_gpu > 0 and rng.random() < share:
            spec = (rng.choice(models),)
        out.append(
            TracePod(
                f"syn-{len(out):05d}",
                pick.cpu_milli,
                pick.memory_mib,
                pick.num_gpu,
                pick.gpu_milli,
                spec,
            )
        )
        total += pick.gpu_total
    return out


def replay(run: Run, policy: str, workload: Workload, seed: int) -> list[tuple[int, int]]:
    """Place every pod in order; (arrived, allocated) milli-GPU after each attempt."""
    pool = Pool(run.nodes, policy, workload=workload, seed=seed)
    arrived = used = 0
    events = []
    for pod in run.pods:
        arrived += pod.gpu_total
        placement = pool.find(pod.request())
        if placement is not None:
            pool.commit(placement)
            used += placement.gpu_milli
        events.append((arrived, used))
    return events


def unallocated_at(events: Sequence[tuple[int, int]], capacity_milli: int, load: int) -> float:
    """The paper's metric: 100 minus the mean allocation (%) over the events whose arrived
    load rounds to ``load`` % (within one point when none does), each rounded as the
    authors' ``merge_alloc_discrete.py`` rounds them."""
    gpus = capacity_milli / FULL_GPU
    exact: list[float] = []
    near: list[float] = []
    for arrived, used in events:
        ratio = round(arrived / gpus / 10)
        alloc = round(used / gpus / 10, 2)
        if ratio == load:
            exact.append(alloc)
        elif abs(ratio - load) <= 1:
            near.append(alloc)
    chosen = exact or near
    if not chosen:
        return math.nan
    return round(100 - round(statistics.fmean(chosen), 2), 2)


def fragmentation(trace_dir: Path, seeds: Sequence[int], policies: Sequence[str]) -> dict[str, Any]:
    nodes = load_nodes(trace_dir / NODE_FILE)
    pods = load_pods(trace_dir / POD_FILE)
    workload = trace_workload(pods)
    per_policy: dict[str, dict[str, list[float]]] = {
        p: {"at_130": [], "at_100": [], "seconds": []} for p in policies
    }
    for seed in seeds:
        run = build_run(nodes, pods, seed)
        for policy in policies:
            started = time.perf_counter()
            events = replay(run, policy, workload, seed)
            elapsed = time.perf_counter() - started
            result = per_policy[policy]
            result["at_130"].append(unallocated_at(events, run.capacity_milli, 130))
            result["at_100"].append(unallocated_at(events, run.capacity_milli, 100))
            result["seconds"].append(elapsed)
            log(
                f"seed {seed} {policy:12s} unallocated at 130%: {result['at_130'][-1]:6.2f} "
                f"({elapsed:.1f} s)"
            )
    return {
        "trace": {
            "nodes": len(nodes),
            "gpus": sum(n.gpus for n in nodes),
            "pods": len(pods),
            "typical_targets": len(workload.targets),
        },
        "policies": {p: _summary(v) for p, v in per_policy.items()},
    }


def _summary(values: dict[str, list[float]]) -> dict[str, Any]:
    at_130 = values["at_130"]
    return {
        "unallocated_pct_at_130": round(statistics.fmean(at_130), 2),
        "unallocated_pct_at_100": round(statistics.fmean(values["at_100"]), 2),
        "std_at_130": round(statistics.pstdev(at_130), 2) if len(at_130) > 1 else 0.0,
        "per_seed_at_130": at_130,
        "seconds_per_run": round(statistics.fmean(values["seconds"]), 2),
    }


def fidelity(policies: dict[str, dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Each baseline against the published mean (judged on the full 10-seed run)."""
    checks = {}
    for name, published in PUBLISHED_AT_130.items():
        if name not in policies:
            continue
        ours = policies[name]["unallocated_pct_at_130"]
        checks[name] = {
            "published": published,
            "measured": ours,
            "difference": round(ours - published, 2),
            "within_tolerance": abs(ours - published) <= FIDELITY_TOLERANCE,
        }
    return {
        "tolerance_points": FIDELITY_TOLERANCE,
        "seeds": list(seeds),
        "complete_seed_set": tuple(seeds) == SEEDS,
        "all_within_tolerance": all(c["within_tolerance"] for c in checks.values()),
        "checks": checks,
    }


VARIANT_SPECS = (("cpu", 0.3), ("gpushare", 0.6), ("multigpu", 0.3), ("gpuspec", 0.33))
VARIANT_POLICIES = ("best_fit", "fgd", "ours")


def variants(trace_dir: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """Unallocated % at 130 % on the synthetic stand-ins for the published variants."""
    nodes = load_nodes(trace_dir / NODE_FILE)
    pods = load_pods(trace_dir / POD_FILE)
    out: dict[str, Any] = {}
    for kind, share in VARIANT_SPECS:
        resampled = synthetic_variant(pods, nodes, kind, share, seed=7)
        workload = trace_workload(resampled)
        results: dict[str, list[float]] = {p: [] for p in VARIANT_POLICIES}
        for seed in seeds:
            run = build_run(nodes, resampled, seed)
            for policy in VARIANT_POLICIES:
                events = replay(run, policy, workload, seed)
                results[policy].append(unallocated_at(events, run.capacity_milli, 130))
        name = f"{kind}{round(share * 100)}"
        out[name] = {p: round(statistics.fmean(v), 2) for p, v in results.items()}
        log(f"synthetic variant {name}: {out[name]}")
    return {
        "note": "resamples of the default pod list (not the published variant files, which "
        "are not on this machine); unallocated % at 130 % arrived load",
        "seeds": list(seeds),
        "results": out,
    }


# ---- throughput ------------------------------------------------------------------------
def synthetic_fleet(n_nodes: int) -> list[NodeState]:
    """4 regions x 2 GPU models, 8 GPUs per node in two NVLink domains, 16 nodes a rack."""
    regions = ("ca-qc-1", "ca-on-1", "se-north-1", "de-fra-1")
    models = ("H100", "L40S")
    nodes = []
    for i in range(n_nodes):
        gpus = tuple(GpuFree(j, FULL_GPU, f"nv{j // 4}") for j in range(8))
        nodes.append(
            NodeState(
                id=f"node-{i:05d}",
                region=regions[i % len(regions)],
                rack=f"rack-{i // 16:04d}",
                gpu_model=models[(i // len(regions)) % len(models)],
                gpus=gpus,
                cpu_free_milli=224_000,
                memory_free_mib=2_048_000,
            )
        )
    return nodes


def synthetic_requests(rng: random.Random, count: int) -> list[Request]:
    """A mixed stream: shares, 1/2/4/8 GPUs, whole nodes, a few multi-node jobs; each
    allows one to three regions and one or both GPU models."""
    regions = ("ca-qc-1", "ca-on-1", "se-north-1", "de-fra-1")
    kinds: list[tuple[int, int, int, bool, int]] = [
        # (weight, gpu_count, gpu_milli, whole_node, node_count)
        (20, 1, 250, False, 1),
        (15, 1, 500, False, 1),
        (25, 1, 1000, False, 1),
        (15, 2, 1000, False, 1),
        (10, 4, 1000, False, 1),
        (8, 8, 1000, False, 1),
        (4, 8, 1000, True, 1),
        (3, 8, 1000, False, 4),
    ]
    weights = [k[0] for k in kinds]
    out = []
    for _ in range(count):
        _, gpus, milli, whole, node_count = rng.choices(kinds, weights)[0]
        allowed = tuple(rng.sample(regions, rng.randint(1, 3)))
        models = rng.choice((("H100",), ("L40S",), ("H100", "L40S")))
        per_gpu_cpu = 24_000 if milli == FULL_GPU else 8_000
        out.append(
            Request(
                regions=allowed,
                gpu_models=models,
                gpu_count=gpus,
                gpu_milli=milli,
                whole_node=whole,
                node_count=node_count,
                cpu_milli=per_gpu_cpu * gpus,
                memory_mib=128_000 * gpus,
            )
        )
    return out


def throughput(quick: bool, seed: int = 42) -> dict[str, Any]:
    """Decisions per second on the synthetic fleet held at about 80 % of its GPUs in use.

    The fleet is first filled to 80 % from the same stream (not timed). Then each
    measured request is placed (timed: ``Pool.place``, refusals with their suggestions
    included); a placement is committed, and random earlier placements are released
    whenever use is above 80 %, so the pool churns at a steady, fragmented occupancy."""
    rng = random.Random(seed)  # a seeded simulation
    nodes = synthetic_fleet(THROUGHPUT_NODES)
    started = time.perf_counter()
    pool = Pool(nodes)
    build_s = time.perf_counter() - started
    capacity = FULL_GPU * 8 * len(nodes)
    target = 0.8 * capacity
    held: list[Placement] = []
    used = 0
    fill_started = time.perf_counter()
    while used < target:
        for request in synthetic_requests(rng, 1000):
            result = pool.place(request)
            if isinstance(result, Placement):
                pool.commit(result)
                held.append(result)
                used += result.gpu_milli
    fill_s = time.perf_counter() - fill_started
    measured = 3_000 if quick else 20_000
    place_s = 0.0
    placed = 0
    for request in synthetic_requests(rng, measured):
        while used > target:
            gone = held.pop(rng.randrange(len(held)))
            pool.release(gone)
            used -= gone.gpu_milli
        t0 = time.perf_counter()
        result = pool.place(request)
        place_s += time.perf_counter() - t0
        if isinstance(result, Placement):
            placed += 1
            pool.commit(result)
            held.append(result)
            used += result.gpu_milli
    one_shot = []
    for request in synthetic_requests(rng, 5):
        t0 = time.perf_counter()
        place(nodes[:ONE_SHOT_NODES], request)
        one_shot.append(time.perf_counter() - t0)
    return {
        "decisions_per_s": round(measured / place_s),
        "throughput": {
            "nodes": len(nodes),
            "gpus": 8 * len(nodes),
            "decisions": measured,
            "placed": placed,
            "refused": measured - placed,
            "occupancy": round(used / capacity, 3),
            "pool_build_s": round(build_s, 3),
            "fill_to_80pct_s": round(fill_s, 1),
            "mean_decision_ms": round(1000 * place_s / measured, 3),
            "policy": "ours",
            "one_shot_place_ms": round(1000 * statistics.median(one_shot), 1),
            "one_shot_nodes": ONE_SHOT_NODES,
            "goal_decisions_per_s": GOAL_DECISIONS_PER_S,
        },
    }


# ---- the command -----------------------------------------------------------------------
def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", help="comma-separated seeds (default 42-51; quick: 42)")
    parser.add_argument("--trace-dir", type=Path, default=DEFAULT_TRACE_DIR)
    parser.add_argument(
        "--policies", default=",".join(POLICIES), help="comma-separated subset to replay"
    )
    parser.add_argument(
        "--skip-fragmentation", action="store_true", help="skip the trace replay (and variants)"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--variants",
        choices=("auto", "on", "off"),
        default="auto",
        help="synthetic stand-ins for the pod-list variants (auto: on unless --quick or "
        "--skip-fragmentation)",
    )
    parser.add_argument("--skip-api", action="store_true", help="skip the API creates")
    parser.add_argument(
        "--pg-url",
        "--database-url",
        dest="pg_url",
        default=os.environ.get("CP_BENCH_DATABASE_URL", DEFAULT_PG_URL),
        help="PostgreSQL database of the API creates; its public schema is DROPPED and "
        "recreated (default: $CP_BENCH_DATABASE_URL or %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(__doc__.splitlines()[0], argv, _options)
    seeds = (
        tuple(int(s) for s in args.seeds.split(",") if s.strip())
        if args.seeds
        else (QUICK_SEEDS if args.quick else SEEDS)
    )
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    started = time.perf_counter()
    load_before = load_average()
    result: dict[str, Any] = {}
    frag = None if args.skip_fragmentation else fragmentation(args.trace_dir, seeds, policies)
    if frag is not None:
        result["policies"] = frag["policies"]
    if not args.skip_throughput:
        result.update(throughput(args.quick))
    if args.variants == "on" or (
        args.variants == "auto" and not args.quick and not args.skip_fragmentation
    ):
        result["synthetic_variants"] = variants(args.trace_dir, seeds[:3])
    if not args.skip_api:
        result.update(api_creates(args.pg_url, args.quick))
    ours = None
    if frag is not None:
        result["fidelity"] = fidelity(frag["policies"], seeds)
        ours = frag["policies"].get("ours", {}).get("unallocated_pct_at_130")
    result["goals"] = {
        "ours_below_fgd_published": None if ours is None else ours < PUBLISHED_AT_130["fgd"],
        "decisions_per_s": None
        if "decisions_per_s" not in result
        else result["decisions_per_s"] >= GOAL_DECISIONS_PER_S,
    }
    if frag is not None:
        result["trace"] = {
            **frag["trace"],
            "dir": str(args.trace_dir),
            "pod_list": POD_FILE,
            "node_list": NODE_FILE,
            "other_variants": "not on this machine (only the default pod list is); not run: "
            + OTHER_VARIANTS,
        }
    result["quick"] = args.quick
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {**machine_info(), "load_average_before": load_before}
    _print_table(result)
    write_json(args.json, result)
    return result


def _print_table(result: dict[str, Any]) -> None:
    if "policies" in result:
        print(f"{'policy':12s} {'unalloc@130%':>12s} {'published':>9s} {'unalloc@100%':>12s}")
    for name, values in result.get("policies", {}).items():
        published = PUBLISHED_AT_130.get(name)
        shown = f"{published:9.2f}" if published is not None else f"{'-':>9s}"
        print(
            f"{name:12s} {values['unallocated_pct_at_130']:12.2f} {shown} "
            f"{values['unallocated_pct_at_100']:12.2f}"
        )
    if "decisions_per_s" in result:
        print(f"decisions/s (10,000 nodes x 8 GPUs): {result['decisions_per_s']}")
    if "api_creates_per_s" in result:
        api = result["api_creates"]
        print(
            f"API creates/s ({api['nodes']} nodes x 8 GPUs, {api['concurrency']} clients, "
            f"{api['requests']} creates): {result['api_creates_per_s']}, "
            f"p50 {result['api_create_p50_ms']} ms, p99 {result['api_create_p99_ms']} ms, "
            f"errors {result['api_create_errors']}, consistent {result['api_creates_consistent']}"
        )


if __name__ == "__main__":
    main()
