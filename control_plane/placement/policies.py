"""Scoring policies: which feasible node a request goes to, and which GPU of it a share
takes. Higher scores win; the pool breaks ties by node order (the first node wins).

``ours`` is the default. The others reproduce the baselines of the ATC'23 paper "Beware of
Fragmentation" (Weng et al.) as its public simulator computes them, integer truncations
included, so the benchmark can compare against the published numbers; see
docs/placement.md.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from control_plane.placement.frag import FragMeter
from control_plane.placement.model import FULL_GPU, Request
from control_plane.placement.workload import DEFAULT_WORKLOAD, Workload

__all__ = [
    "POLICY_NAMES",
    "BestFit",
    "DotProduct",
    "Fgd",
    "GpuClustering",
    "GpuPacking",
    "NodeView",
    "Ours",
    "Policy",
    "RandomFit",
    "make_policy",
]

# The paper's normalisation constants (largest node in its cluster).
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8_000
SHARE_TAG = "share-gpu"


class NodeView:
    """What a score may look at: a node's free resources, its GPUs' free milli sorted
    ascending, and the kinds of GPU work it already hosts (for GPU clustering)."""

    __slots__ = ("cpu_free", "frees", "memory_free", "model", "n_full", "tags", "total_free")

    def __init__(
        self,
        cpu_free: int,
        memory_free: int,
        frees: tuple[int, ...],
        tags: frozenset[str] = frozenset(),
        model: str = "",
    ) -> None:
        self.model = model
        self.cpu_free = cpu_free
        self.memory_free = memory_free
        self.frees = frees
        self.tags = tags
        self.total_free = sum(frees)
        self.n_full = len(frees) - _first_full(frees)


def _first_full(frees: tuple[int, ...]) -> int:
    i = len(frees)
    while i > 0 and frees[i - 1] >= FULL_GPU:
        i -= 1
    return i


def affinity_tag(req: Request) -> str | None:
    """The kind of GPU work a request is, for GPU clustering (None for CPU-only)."""
    if req.gpu_count == 0:
        return None
    return SHARE_TAG if req.is_share else f"{req.gpu_count}-gpu"


class Policy:
    """Base: a score per node state and the choice of GPU for a share.

    ``memoize``: the pool may cache scores by (node state, request) because computing them
    costs more than a lookup. ``random_node``: the node is drawn uniformly from the
    feasible ones instead of scored. ``uses_tags``: scores look at ``NodeView.tags``."""

    name = "base"
    memoize = False
    random_node = False
    uses_tags = False

    def score(self, view: NodeView, req: Request) -> Any:
        raise NotImplementedError

    def pick_share(self, frees: Sequence[int], view: NodeView, req: Request) -> int:
        """Position (in ``frees``, index order) of the GPU a share goes to: by default the
        tightest GPU that fits, the first on ties."""
        best = -1
        for i, free in enumerate(frees):
            if free >= req.gpu_milli and (best < 0 or free < frees[best]):
                best = i
        return best

    def pick_node(self, sizes: Sequence[int]) -> int:
        """For ``random_node`` policies: an index below ``sum(sizes)``."""
        raise NotImplementedError


class RandomFit(Policy):
    """Any feasible node, uniformly; a share goes to any GPU it fits on."""

    name = "random"
    random_node = True

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a simulation baseline, not security

    def score(self, view: NodeView, req: Request) -> Any:
        return 0

    def pick_node(self, sizes: Sequence[int]) -> int:
        return self.rng.randrange(sum(sizes))

    def pick_share(self, frees: Sequence[int], view: NodeView, req: Request) -> int:
        fits = [i for i, free in enumerate(frees) if free >= req.gpu_milli]
        return self.rng.choice(fits)


class BestFit(Policy):
    """The node with the least CPU and GPU left after placement (equal weights)."""

    name = "best_fit"

    def score(self, view: NodeView, req: Request) -> Any:
        left = (view.cpu_free - req.cpu_milli) / MAX_SPEC_CPU * 0.5 + (
            view.total_free - req.gpu_milli_per_node
        ) / MAX_SPEC_GPU * 0.5
        return int((1 - left) * 100)


class DotProduct(Policy):
    """The node whose free (CPU, GPU) vector has the smallest dot product with the
    request's: its leftovers align least with what the request needs."""

    name = "dot_product"

    def score(self, view: NodeView, req: Request) -> Any:
        dot = (view.cpu_free / MAX_SPEC_CPU) * (req.cpu_milli / MAX_SPEC_CPU) + (
            view.total_free / MAX_SPEC_GPU
        ) * (req.gpu_milli_per_node / MAX_SPEC_GPU)
        return int(100 * (1 - dot / 2))


class GpuClustering(Policy):
    """Keep requests of one kind (shares, 1-GPU, 2-GPU ...) together on nodes."""

    name = "clustering"
    uses_tags = True

    def score(self, view: NodeView, req: Request) -> Any:
        tag = affinity_tag(req)
        if tag is None:
            return 0
        base = 25 * (MAX_SPEC_GPU - view.total_free) // MAX_SPEC_GPU
        if tag in view.tags:
            return base + (75 if len(view.tags) == 1 else 50)
        return base + (25 if not view.tags else 0)


class GpuPacking(Policy):
    """Partly used GPUs first, then partly used nodes, then empty nodes."""

    name = "packing"

    def score(self, view: NodeView, req: Request) -> Any:
        if req.gpu_count == 0:
            return 0
        n = len(view.frees)
        if view.n_full == n:
            return 33 - n
        if req.is_share:
            tight = next(f for f in view.frees if f >= req.gpu_milli)
            if tight >= FULL_GPU:
                return max(50 - 1, 33)
            return max(100 - tight // 100, 50)
        return max(50 - req.gpu_count, 33)


class _FragPolicy(Policy):
    """Shared by FGD and ours: the change of fragmentation a placement causes."""

    memoize = True

    def __init__(self, workload: Workload | None = None) -> None:
        self.meter = FragMeter(workload or DEFAULT_WORKLOAD)

    def growths(self, view: NodeView, req: Request) -> list[tuple[int, int]]:
        """``(fragmentation growth x weight, free milli of the GPU used)`` for each
        distinct way to place ``req`` on the node (one per distinct GPU a share fits)."""
        meter = self.meter
        model = view.model
        before = meter.amount(view.cpu_free, view.frees, model)
        cpu_after = view.cpu_free - req.cpu_milli
        frees = view.frees
        if req.gpu_count == 0:
            return [(meter.amount(cpu_after, frees, model) - before, 0)]
        if not req.is_share:
            k = req.gpu_count
            after = (0,) * k + frees[: len(frees) - k]
            return [(meter.amount(cpu_after, after, model) - before, FULL_GPU)]
        out = []
        last = -1
        for i, free in enumerate(frees):
            if free < req.gpu_milli or free == last:
                continue
            last = free
            after = _replace_sorted(frees, i, free - req.gpu_milli)
            out.append((meter.amount(cpu_after, after, model) - before, free))
        return out

    def binned(self, growth: int) -> int:
        """FGD's integer score of a growth: trunc(100 * sigmoid(-growth_milli / 1000))."""
        x = -growth / self.meter.total_weight / 1000
        return int(100 / (1 + math.exp(-x)))

    def pick_share(self, frees: Sequence[int], view: NodeView, req: Request) -> int:
        by_free = {free: self.binned(g) for g, free in self.growths(view, req)}
        best = max(by_free.values())
        return next(
            i for i, free in enumerate(frees) if free >= req.gpu_milli and by_free[free] == best
        )


def _replace_sorted(frees: tuple[int, ...], i: int, value: int) -> tuple[int, ...]:
    rest = frees[:i] + frees[i + 1 :]
    lo = 0
    while lo < len(rest) and rest[lo] < value:
        lo += 1
    return (*rest[:lo], value, *rest[lo:])


class Fgd(_FragPolicy):
    """Fragmentation Gradient Descent: the node whose fragmentation grows least, as the
    paper's integer score trunc(100 * sigmoid(-growth / 1000)); a share takes the first
    GPU reaching the node's best score."""

    name = "fgd"

    def score(self, view: NodeView, req: Request) -> Any:
        return max(self.binned(g) for g, _ in self.growths(view, req))


class Ours(_FragPolicy):
    """FGD's binned fragmentation growth first; within a bin, a node that already runs GPU
    work before an untouched one (untouched nodes stay whole for bare metal and 8-GPU
    jobs); and a CPU-only request takes its CPU where the most is left over beyond what
    the node's free GPUs will need (``cpu_per_milli`` of the workload), so CPU does not
    run out beside idle GPUs. Remaining ties: the first node. See docs/placement.md."""

    name = "ours"

    def __init__(self, workload: Workload | None = None) -> None:
        super().__init__(workload)
        gpu = [t for t in self.meter.workload.targets if t.gpu_count > 0 and t.gpu_milli > 0]
        milli = sum(t.weight * t.gpu_milli * t.gpu_count for t in gpu)
        self.cpu_per_milli = sum(t.weight * t.cpu_milli for t in gpu) / milli if milli else 0.0

    def score(self, view: NodeView, req: Request) -> Any:
        binned = max(self.binned(g) for g, _ in self.growths(view, req))
        in_use = view.n_full < len(view.frees)
        if req.gpu_count:
            return (binned, in_use, 0.0)
        surplus = view.cpu_free - req.cpu_milli - self.cpu_per_milli * view.total_free
        return (binned, in_use, surplus)


POLICY_NAMES = ("random", "best_fit", "dot_product", "clustering", "packing", "fgd", "ours")


def make_policy(name: str, workload: Workload | None = None, seed: int = 0) -> Policy:
    """A fresh policy by name (see ``POLICY_NAMES``)."""
    simple: dict[str, type[Policy]] = {
        "best_fit": BestFit,
        "dot_product": DotProduct,
        "clustering": GpuClustering,
        "packing": GpuPacking,
    }
    if name in simple:
        return simple[name]()
    if name == "random":
        return RandomFit(seed)
    if name == "fgd":
        return Fgd(workload)
    if name == "ours":
        return Ours(workload)
    raise ValueError(f"unknown placement policy {name!r}; known: {', '.join(POLICY_NAMES)}")
