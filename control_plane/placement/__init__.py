"""Placement: where a request for GPUs goes, as a pure function of the nodes' state.

No I/O, no clock, no database: plain data in, a decision out, so it can be property-tested
and benchmarked (bench/placement.py). See docs/placement.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from control_plane.placement.explain import describe
from control_plane.placement.model import (
    FULL_GPU,
    GpuFree,
    NodeState,
    Placement,
    Refusal,
    Request,
    Slot,
)
from control_plane.placement.policies import POLICY_NAMES, Policy, make_policy
from control_plane.placement.pool import Pool
from control_plane.placement.workload import (
    DEFAULT_WORKLOAD,
    TargetRequest,
    Workload,
    typical_workload,
)

__all__ = [
    "DEFAULT_WORKLOAD",
    "FULL_GPU",
    "POLICY_NAMES",
    "GpuFree",
    "NodeState",
    "Placement",
    "Policy",
    "Pool",
    "Refusal",
    "Request",
    "Slot",
    "TargetRequest",
    "Workload",
    "describe",
    "make_policy",
    "place",
    "typical_workload",
]


def place(
    nodes: Sequence[NodeState],
    request: Request,
    policy: Policy | str = "ours",
    *,
    workload: Workload | None = None,
) -> Placement | Refusal:
    """Where ``request`` goes on ``nodes`` as they stand, or why it cannot go anywhere.

    Never outside ``request.regions``; the first region (in the given order) with room
    wins, and within it the policy's best node (ties: the first node given)."""
    return Pool(nodes, policy, workload=workload).place(request)
