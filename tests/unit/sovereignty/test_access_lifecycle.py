"""The access request lifecycle table, expiry by the clock, and duration bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from control_plane.sovereignty.access.lifecycle import (
    FINAL_STATES,
    MAX_BREAK_GLASS_DURATION,
    MAX_DURATION,
    MIN_DURATION,
    TRANSITIONS,
    AccessEvent,
    AccessState,
    Timing,
    TransitionRefused,
    allowed_events,
    effective_state,
    is_active,
    minutes,
    next_state,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class TestTransitions:
    @pytest.mark.parametrize(
        ("state", "event", "target"),
        [
            (AccessState.PENDING, AccessEvent.APPROVE, AccessState.APPROVED),
            (AccessState.PENDING, AccessEvent.DENY, AccessState.DENIED),
            (AccessState.PENDING, AccessEvent.WITHDRAW, AccessState.WITHDRAWN),
            (AccessState.PENDING, AccessEvent.EXPIRE, AccessState.EXPIRED),
            (AccessState.APPROVED, AccessEvent.REVOKE, AccessState.REVOKED),
            (AccessState.APPROVED, AccessEvent.EXPIRE, AccessState.EXPIRED),
        ],
    )
    def test_documented_moves_are_allowed(
        self, state: AccessState, event: AccessEvent, target: AccessState
    ) -> None:
        assert next_state(state, event) is target

    def test_a_decided_request_cannot_be_decided_again(self) -> None:
        for event in (AccessEvent.APPROVE, AccessEvent.DENY, AccessEvent.WITHDRAW):
            with pytest.raises(TransitionRefused):
                next_state(AccessState.APPROVED, event)
        with pytest.raises(TransitionRefused):
            next_state(AccessState.DENIED, AccessEvent.APPROVE)

    def test_a_pending_request_cannot_be_revoked(self) -> None:
        with pytest.raises(TransitionRefused) as refused:
            next_state(AccessState.PENDING, AccessEvent.REVOKE)
        assert "revoke" in str(refused.value)

    @pytest.mark.parametrize("state", sorted(FINAL_STATES))
    def test_final_states_lead_nowhere(self, state: AccessState) -> None:
        assert allowed_events(state) == []
        for event in AccessEvent:
            assert (state, event) not in TRANSITIONS

    def test_people_may_approve_deny_or_withdraw_pending_and_revoke_approved(self) -> None:
        assert allowed_events(AccessState.PENDING) == [
            AccessEvent.APPROVE,
            AccessEvent.DENY,
            AccessEvent.WITHDRAW,
        ]
        assert allowed_events(AccessState.APPROVED) == [AccessEvent.REVOKE]


class TestExpiry:
    def test_pending_request_expires_when_nobody_decides_in_time(self) -> None:
        timing = Timing(decide_by=T0 + HOUR, expires_at=None)

        assert effective_state(AccessState.PENDING, timing, T0) is AccessState.PENDING
        assert effective_state(AccessState.PENDING, timing, T0 + HOUR) is AccessState.EXPIRED

    def test_grant_is_active_only_inside_its_window(self) -> None:
        timing = Timing(decide_by=T0, expires_at=T0 + 2 * HOUR)

        assert is_active(AccessState.APPROVED, timing, T0 + HOUR)
        assert not is_active(AccessState.APPROVED, timing, T0 + 2 * HOUR)
        assert effective_state(AccessState.APPROVED, timing, T0 + 3 * HOUR) is AccessState.EXPIRED

    def test_revoked_or_denied_requests_never_become_active(self) -> None:
        timing = Timing(decide_by=T0 + HOUR, expires_at=T0 + HOUR)
        for state in (AccessState.REVOKED, AccessState.DENIED, AccessState.WITHDRAWN):
            assert not is_active(state, timing, T0)
            assert effective_state(state, timing, T0 + 5 * HOUR) is state


class TestDurations:
    def test_bounds_are_fifteen_minutes_to_three_days_and_four_hours_for_break_glass(
        self,
    ) -> None:
        assert (minutes(MIN_DURATION), minutes(MAX_DURATION)) == (15, 72 * 60)
        assert minutes(MAX_BREAK_GLASS_DURATION) == 4 * 60
