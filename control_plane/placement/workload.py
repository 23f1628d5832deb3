"""The target workload: the requests we expect to keep arriving, by how often they come.

Fragmentation is always *relative to a workload*: 300 milli-GPU free on a GPU is a
fragment for a whole-GPU request but room for a 250 milli-GPU replica. Both FGD and our
score measure a node's fragmentation against such a list (FGD calls them "typical pods").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from control_plane.placement.model import FULL_GPU

__all__ = ["DEFAULT_WORKLOAD", "TargetRequest", "Workload", "typical_workload"]


@dataclass(frozen=True, slots=True)
class TargetRequest:
    """One kind of request and its weight (a count: weights are kept integral so that
    fragmentation sums are exact and an unchanged node scores an exact zero change)."""

    cpu_milli: int
    gpu_milli: int  # per GPU; 0 for a CPU-only request
    gpu_count: int  # 0 for a CPU-only request
    weight: int
    gpu_models: tuple[str, ...] = ()  # acceptable GPU models; empty: any


@dataclass(frozen=True, slots=True)
class Workload:
    targets: tuple[TargetRequest, ...]

    @property
    def total_weight(self) -> int:
        return sum(t.weight for t in self.targets) or 1

    @property
    def cpu_thresholds(self) -> tuple[int, ...]:
        """The distinct CPU requests of the targets, ascending: a node's CPU matters to the
        fragmentation measure only through which of these it can still satisfy."""
        return tuple(sorted({t.cpu_milli for t in self.targets}))


def typical_workload(
    requests: Iterable[tuple[int, int, int] | tuple[int, int, int, tuple[str, ...]]],
    coverage: float = 0.95,
) -> Workload:
    """FGD's "typical pods": ``(cpu_milli, gpu_milli, gpu_count[, gpu_models])`` grouped,
    the most frequent first (ties: the larger key first), taken until ``coverage`` of all
    requests is covered. CPU-only requests carry ``gpu_milli = 0``."""
    counts = Counter(_with_models(r) for r in requests)
    total = sum(counts.values())
    if total == 0:
        return DEFAULT_WORKLOAD
    ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    chosen: list[TargetRequest] = []
    covered = 0
    for (cpu, milli, count, models), n in ranked:
        chosen.append(TargetRequest(cpu, milli, count, n, tuple(models)))
        covered += n
        if covered >= coverage * total:
            break
    return Workload(tuple(chosen))


def _with_models(
    r: tuple[int, int, int] | tuple[int, int, int, tuple[str, ...]],
) -> tuple[int, int, int, tuple[str, ...]]:
    if len(r) == 4:
        return r
    return (r[0], r[1], r[2], ())


# A product default when nothing better is known: whole GPUs in the usual powers of two
# and inference replicas of a quarter and a half GPU, smaller requests more frequent.
DEFAULT_WORKLOAD = Workload(
    (
        TargetRequest(0, FULL_GPU, 1, 30),
        TargetRequest(0, FULL_GPU, 2, 15),
        TargetRequest(0, FULL_GPU, 4, 10),
        TargetRequest(0, FULL_GPU, 8, 10),
        TargetRequest(0, 500, 1, 20),
        TargetRequest(0, 250, 1, 15),
    )
)
