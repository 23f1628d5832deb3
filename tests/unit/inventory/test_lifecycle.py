"""The node lifecycle table: every state reachable, retirement final, no dead ends."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.inventory.lifecycle import (
    TRANSITIONS,
    NodeState,
    allowed_from,
    can_transition,
)


def reachable_from(start: NodeState) -> set[NodeState]:
    seen = {start}
    queue = deque([start])
    while queue:
        for target in TRANSITIONS[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


class TestLifecycle:
    def test_every_state_has_an_entry(self) -> None:
        assert set(TRANSITIONS) == set(NodeState)

    def test_a_new_node_can_reach_every_state(self) -> None:
        assert reachable_from(NodeState.ENROLLING) == set(NodeState)

    def test_retired_is_final(self) -> None:
        assert allowed_from(NodeState.RETIRED) == []

    @pytest.mark.parametrize("state", [s for s in NodeState if s is not NodeState.RETIRED])
    def test_every_live_node_can_still_be_retired(self, state: NodeState) -> None:
        assert NodeState.RETIRED in reachable_from(state)

    @pytest.mark.parametrize("state", list(NodeState))
    def test_no_state_transitions_to_itself(self, state: NodeState) -> None:
        assert not can_transition(state, state)

    def test_nothing_returns_to_enrolling(self) -> None:
        assert all(NodeState.ENROLLING not in targets for targets in TRANSITIONS.values())

    def test_an_enrolling_node_must_burn_in_before_serving(self) -> None:
        assert not can_transition(NodeState.ENROLLING, NodeState.AVAILABLE)
        assert can_transition(NodeState.ENROLLING, NodeState.BURN_IN)

    def test_an_available_node_is_drained_before_retiring(self) -> None:
        assert not can_transition(NodeState.AVAILABLE, NodeState.RETIRED)
        assert can_transition(NodeState.DRAINING, NodeState.RETIRED)

    def test_allowed_states_are_listed_in_lifecycle_order(self) -> None:
        assert allowed_from(NodeState.MAINTENANCE) == [
            NodeState.BURN_IN,
            NodeState.AVAILABLE,
            NodeState.RETIRED,
        ]

    @given(st.sampled_from(list(NodeState)), st.sampled_from(list(NodeState)))
    def test_can_transition_agrees_with_allowed_from(
        self, current: NodeState, target: NodeState
    ) -> None:
        assert can_transition(current, target) == (target in allowed_from(current))
