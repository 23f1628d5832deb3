"""A node's GPU fragmentation against a target workload (the measure FGD descends).

For each target request the node's idle GPU milli splits into what that request could
still use and what it could not (a *fragment*):
- a CPU-only target uses no GPU, so every idle GPU milli is a fragment for it;
- a GPU target that fits (enough GPUs with room, and the CPU it needs) leaves as
  fragments only the GPUs too small for it;
- a GPU target that does not fit (no room, no CPU left, or a GPU model it does not
  accept) makes every idle milli a fragment.
The node's fragmentation is the weighted sum over the targets. Weights are integer
counts, so the result is an exact integer (in milli-GPU x weight); divide by the
workload's total weight for milli-GPU.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from control_plane.placement.workload import Workload

__all__ = ["FragMeter"]

_MEMO_LIMIT = 500_000


class FragMeter:
    """Fragmentation of node states against one workload, memoized by state.

    A state is ``(cpu_free_milli, frees, gpu_model)`` with ``frees`` the GPUs' free milli
    sorted ascending (the model matters only to targets that accept some models only).
    Only the CPU's position among the targets' CPU requests matters, so states that differ
    in CPU alone share one memo entry."""

    __slots__ = (
        "_cpu_thresholds",
        "_gpu_targets",
        "_memo",
        "_model_specific",
        "_whole_weight",
        "workload",
    )

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self._cpu_thresholds = workload.cpu_thresholds
        # CPU-only targets count every idle milli, whatever the node: one weight for all.
        self._whole_weight = sum(
            t.weight for t in workload.targets if t.gpu_count == 0 or t.gpu_milli == 0
        )
        self._gpu_targets = tuple(
            (t.cpu_milli, t.gpu_milli, t.gpu_count, t.weight, frozenset(t.gpu_models))
            for t in workload.targets
            if t.gpu_count > 0 and t.gpu_milli > 0
        )
        self._model_specific = any(t.gpu_models for t in workload.targets)
        self._memo: dict[tuple[int, tuple[int, ...], str], int] = {}

    @property
    def total_weight(self) -> int:
        return self.workload.total_weight

    def cpu_class(self, cpu_free: int) -> int:
        return bisect_right(self._cpu_thresholds, cpu_free)

    def amount(self, cpu_free: int, frees: tuple[int, ...], model: str = "") -> int:
        """Fragmentation x total weight of a node with ``frees`` sorted ascending."""
        model = model if self._model_specific else ""
        key = (bisect_right(self._cpu_thresholds, cpu_free), frees, model)
        found = self._memo.get(key)
        if found is None:
            found = self._compute(cpu_free, frees, model)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _compute(self, cpu_free: int, frees: Sequence[int], model: str) -> int:
        total = sum(frees)
        if total == 0:
            return 0
        amount = self._whole_weight * total
        prefix = [0]
        for free in frees:
            prefix.append(prefix[-1] + free)
        n = len(frees)
        for cpu, milli, count, weight, models in self._gpu_targets:
            below = bisect_left(frees, milli)  # GPUs too small for this target
            if models and model not in models:  # a GPU model it cannot use
                amount += weight * total
            elif n - below >= count and cpu_free >= cpu:
                amount += weight * prefix[below]
            else:
                amount += weight * total
        return amount
