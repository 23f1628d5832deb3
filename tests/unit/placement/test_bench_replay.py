"""The placement benchmark's trace replay on a tiny synthetic trace (not timed): the loader
reads every pod-list layout, and each policy's replay yields the paper's metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.placement import (
    POLICIES,
    build_run,
    load_nodes,
    load_pods,
    replay,
    trace_workload,
    unallocated_at,
)

# 120 GPU nodes (60 x 8 GPUs, 60 x 2 GPUs: 600 GPUs) and one CPU-only node.
NODES = (
    "sn,cpu_milli,memory_mib,gpu,model\n"
    + "".join(f"node-{i:03d},96000,393216,8,G2\n" for i in range(60))
    + "".join(f"node-{i:03d},64000,262144,2,T4\n" for i in range(60, 120))
    + "node-cpu,32000,262144,0,\n"
)
GPU_NODES, GPUS = 120, 600

FULL_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)
SPECS = [  # (cpu_milli, memory_mib, num_gpu, gpu_milli)
    (4000, 8192, 1, 1000),
    (2000, 4096, 1, 500),
    (8000, 16384, 0, 0),
    (3000, 8192, 1, 250),
    (16000, 32768, 4, 1000),
    (6000, 8192, 1, 810),
    (12000, 65536, 8, 1000),
    (2000, 2048, 2, 1000),
]


def pod_rows(count: int) -> list[tuple[str, int, int, int, int]]:
    return [(f"pod-{i:03d}", *SPECS[i % len(SPECS)]) for i in range(count)]


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    (tmp_path / "nodes.csv").write_text(NODES)
    rows = pod_rows(280)  # 580 GPUs requested: 97 % of the cluster
    full = FULL_HEADER + "".join(
        f"{n},{c},{m},{g},{milli},,LS,Running,0,10,0\n" for n, c, m, g, milli in rows
    )
    (tmp_path / "full.csv").write_text(full)
    five = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n" + "".join(
        f"{n},{c},{m},{g},{milli}\n" for n, c, m, g, milli in rows
    )
    (tmp_path / "five.csv").write_text(five)
    (tmp_path / "headerless.csv").write_text(five.split("\n", 1)[1])
    (tmp_path / "spec.csv").write_text(
        FULL_HEADER + "p1,1000,1024,1,500,V100M16|G2,LS,Running,0,1,0\n"
    )
    return tmp_path


class TestTraceLoading:
    def test_every_pod_list_layout_reads_the_same(self, trace: Path) -> None:
        full = load_pods(trace / "full.csv")
        assert len(full) == 280
        assert load_pods(trace / "five.csv") == full
        assert load_pods(trace / "headerless.csv") == full

    def test_gpu_type_constraints_are_kept(self, trace: Path) -> None:
        (pod,) = load_pods(trace / "spec.csv")
        assert pod.gpu_spec == ("V100M16", "G2")
        assert pod.request().gpu_models == ("V100M16", "G2")

    def test_cpu_only_nodes_are_not_part_of_the_gpu_cluster(self, trace: Path) -> None:
        nodes = load_nodes(trace / "nodes.csv")
        assert len(nodes) == GPU_NODES
        assert all(n.gpus > 0 for n in nodes)
        assert sum(n.gpus for n in nodes) == GPUS


class TestReplay:
    def test_clones_are_appended_until_130_percent_of_the_gpus(self, trace: Path) -> None:
        nodes, pods = load_nodes(trace / "nodes.csv"), load_pods(trace / "full.csv")
        run = build_run(nodes, pods, seed=42)
        requested = sum(p.gpu_total for p in run.pods)
        assert sorted(p.name for p in run.pods[: len(pods)]) == sorted(p.name for p in pods)
        assert 1.3 * run.capacity_milli - 1000 < requested <= 1.3 * run.capacity_milli + 7000
        assert build_run(nodes, pods, seed=42) == run  # the seed fixes everything

    @pytest.mark.parametrize("policy", POLICIES)
    def test_each_policy_replays_to_a_metric(self, trace: Path, policy: str) -> None:
        nodes, pods = load_nodes(trace / "nodes.csv"), load_pods(trace / "five.csv")
        run = build_run(nodes, pods, seed=43)
        events = replay(run, policy, trace_workload(pods), seed=43)
        assert len(events) == len(run.pods)
        assert all(used <= run.capacity_milli for _, used in events)
        assert 0 <= unallocated_at(events, run.capacity_milli, 130) <= 100

    def test_the_metric_averages_the_events_in_the_load_bin(self) -> None:
        # 10 GPUs: events at 129.6 % and 130.0 % arrived load, 90 % and 92 % allocated.
        events = [(10_000, 5_000), (12_960, 9_000), (13_000, 9_200)]
        assert unallocated_at(events, 10_000, 130) == 9.0
        assert unallocated_at(events, 10_000, 100) == 50.0
