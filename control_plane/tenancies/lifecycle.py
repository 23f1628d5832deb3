"""Tenancy states and the only transitions allowed between them.

requested → placing → provisioning → active → releasing → cleaning → released, or failed
(with a reason). A failure while provisioning still goes through releasing and cleaning,
so nothing the tenant had is left on the capacity before it returns to the pool.
"""

from __future__ import annotations

from enum import StrEnum

from control_plane.errors import InvalidTransition


class TenancyState(StrEnum):
    REQUESTED = "requested"
    PLACING = "placing"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    RELEASING = "releasing"
    CLEANING = "cleaning"
    RELEASED = "released"
    FAILED = "failed"


TRANSITIONS: dict[TenancyState, frozenset[TenancyState]] = {
    TenancyState.REQUESTED: frozenset({TenancyState.PLACING, TenancyState.FAILED}),
    TenancyState.PLACING: frozenset({TenancyState.PROVISIONING, TenancyState.FAILED}),
    TenancyState.PROVISIONING: frozenset({TenancyState.ACTIVE, TenancyState.RELEASING}),
    TenancyState.ACTIVE: frozenset({TenancyState.RELEASING}),
    TenancyState.RELEASING: frozenset({TenancyState.CLEANING}),
    TenancyState.CLEANING: frozenset({TenancyState.RELEASED, TenancyState.FAILED}),
    TenancyState.RELEASED: frozenset(),
    TenancyState.FAILED: frozenset(),
}

# States the reconciler drives; the others wait for a person (or are final).
WORKING = frozenset({TenancyState.PROVISIONING, TenancyState.RELEASING, TenancyState.CLEANING})
# States that hold GPUs.
HOLDING = frozenset(
    {
        TenancyState.PLACING,
        TenancyState.PROVISIONING,
        TenancyState.ACTIVE,
        TenancyState.RELEASING,
        TenancyState.CLEANING,
    }
)
FINAL = frozenset({TenancyState.RELEASED, TenancyState.FAILED})


def can_transition(current: TenancyState, target: TenancyState) -> bool:
    return target in TRANSITIONS[current]


def require_transition(current: str, target: TenancyState) -> None:
    """409 naming both states when ``target`` cannot follow ``current``."""
    if not can_transition(TenancyState(current), target):
        raise InvalidTransition(detail=f"A tenancy cannot go from {current} to {target}.")
