"""Node lifecycle: the states and the only transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class NodeState(StrEnum):
    ENROLLING = "enrolling"
    BURN_IN = "burn-in"
    AVAILABLE = "available"
    DRAINING = "draining"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


TRANSITIONS: dict[NodeState, frozenset[NodeState]] = {
    NodeState.ENROLLING: frozenset({NodeState.BURN_IN, NodeState.RETIRED}),
    NodeState.BURN_IN: frozenset({NodeState.AVAILABLE, NodeState.MAINTENANCE, NodeState.RETIRED}),
    NodeState.AVAILABLE: frozenset({NodeState.DRAINING, NodeState.MAINTENANCE}),
    NodeState.DRAINING: frozenset({NodeState.AVAILABLE, NodeState.MAINTENANCE, NodeState.RETIRED}),
    NodeState.MAINTENANCE: frozenset({NodeState.BURN_IN, NodeState.AVAILABLE, NodeState.RETIRED}),
    NodeState.RETIRED: frozenset(),
}


def can_transition(current: NodeState, target: NodeState) -> bool:
    return target in TRANSITIONS[current]


def allowed_from(current: NodeState) -> list[NodeState]:
    return sorted(TRANSITIONS[current], key=list(NodeState).index)
