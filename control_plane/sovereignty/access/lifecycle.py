"""Operator access requests: their states, the events that move them, and time bounds.

One table (``TRANSITIONS``) says which event may move a request from which state, so the
service, the portal and the tests share a single answer. It is pure: times come in as
arguments (from ``control_plane.clock``), never from the wall clock.

    pending ──approve──▶ approved ──(window ends)──▶ expired
       │  ╲──deny──▶ denied          ╲──revoke──▶ revoked
       │   ╲─withdraw─▶ withdrawn
       ╰──(not decided in time)──▶ expired

A break-glass request is born approved (``open_break_glass``): its window starts at once,
and the tenant reviews it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class AccessState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # the grant window is open (until expires_at)
    DENIED = "denied"
    EXPIRED = "expired"  # never decided in time, or the grant window ended
    WITHDRAWN = "withdrawn"
    REVOKED = "revoked"


class AccessEvent(StrEnum):
    APPROVE = "approve"
    DENY = "deny"
    WITHDRAW = "withdraw"
    REVOKE = "revoke"
    EXPIRE = "expire"


class ReasonCode(StrEnum):
    """Why an operator needs access (after Google's Key Access Justifications codes)."""

    CUSTOMER_INITIATED_SUPPORT = "customer_initiated_support"
    INCIDENT_RESPONSE = "incident_response"
    HARDWARE_MAINTENANCE = "hardware_maintenance"
    LEGAL_OR_REGULATORY = "legal_or_regulatory"
    SECURITY_INVESTIGATION = "security_investigation"


class ResourceType(StrEnum):
    NODE_CONSOLE = "node_console"
    TENANCY = "tenancy"
    SUPPORT_DATA = "support_data"


class RequestKind(StrEnum):
    STANDARD = "standard"
    BREAK_GLASS = "break_glass"


class ReviewVerdict(StrEnum):
    ACCEPTED = "accepted"
    DISPUTED = "disputed"


TRANSITIONS: dict[tuple[AccessState, AccessEvent], AccessState] = {
    (AccessState.PENDING, AccessEvent.APPROVE): AccessState.APPROVED,
    (AccessState.PENDING, AccessEvent.DENY): AccessState.DENIED,
    (AccessState.PENDING, AccessEvent.WITHDRAW): AccessState.WITHDRAWN,
    (AccessState.PENDING, AccessEvent.EXPIRE): AccessState.EXPIRED,
    (AccessState.APPROVED, AccessEvent.REVOKE): AccessState.REVOKED,
    (AccessState.APPROVED, AccessEvent.EXPIRE): AccessState.EXPIRED,
}

FINAL_STATES = frozenset(
    {AccessState.DENIED, AccessState.EXPIRED, AccessState.WITHDRAWN, AccessState.REVOKED}
)

# How long an operator may ask for (the grant window), and for break-glass.
MIN_DURATION = timedelta(minutes=15)
MAX_DURATION = timedelta(hours=72)
MAX_BREAK_GLASS_DURATION = timedelta(hours=4)
# A request nobody decided within this long expires; the operator asks again if still needed.
DECISION_WINDOW = timedelta(hours=24)


class TransitionRefused(Exception):
    """The event is not allowed from the request's current state."""

    def __init__(self, state: AccessState, event: AccessEvent) -> None:
        super().__init__(f"cannot {event} a request that is {state}")
        self.state = state
        self.event = event


def next_state(state: AccessState, event: AccessEvent) -> AccessState:
    """The state ``event`` moves a request to, or :class:`TransitionRefused`."""
    target = TRANSITIONS.get((state, event))
    if target is None:
        raise TransitionRefused(state, event)
    return target


def allowed_events(state: AccessState) -> list[AccessEvent]:
    """Events a person may still trigger from ``state`` (expiry is the clock's, not theirs)."""
    return [e for (s, e) in TRANSITIONS if s is state and e is not AccessEvent.EXPIRE]


@dataclass(frozen=True)
class Timing:
    """The times that decide whether a stored state still holds."""

    decide_by: datetime  # a pending request expires at this moment
    expires_at: datetime | None  # an approved request's window ends at this moment


def effective_state(stored: AccessState, timing: Timing, now: datetime) -> AccessState:
    """The state as of ``now``: a stored state may have run out since it was written."""
    if stored is AccessState.PENDING and now >= timing.decide_by:
        return next_state(stored, AccessEvent.EXPIRE)
    if stored is AccessState.APPROVED and (timing.expires_at is None or now >= timing.expires_at):
        return next_state(stored, AccessEvent.EXPIRE)
    return stored


def is_active(stored: AccessState, timing: Timing, now: datetime) -> bool:
    """Whether the grant may be used at ``now`` (approved and inside its window)."""
    return effective_state(stored, timing, now) is AccessState.APPROVED


def minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)
