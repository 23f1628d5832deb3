"""Problems residency answers with (problem types documented in docs/residency.md)."""

from __future__ import annotations

from typing import Any

from control_plane.errors import Conflict, Forbidden


class ResidencyDenied(Forbidden):
    """A placement or export the organization's residency policy refuses.

    The problem body carries ``rule`` (the stable id of the deciding clause). The refusal
    commits its transaction (``commit_anyway``) so the ledger entry recording it survives
    the failed request; callers check before writing anything else.
    """

    status = 403
    slug = "residency-denied"
    title = "Refused by the residency policy"

    def __init__(self, *, detail: str, rule: str, **kwargs: Any) -> None:
        super().__init__(detail=detail, extra={"rule": rule}, commit_anyway=True, **kwargs)

    @property
    def rule(self) -> str:
        return str(self.extra["rule"])


class PolicyStrandsResources(Conflict):
    """A policy change would leave existing resources outside it (``resources`` lists them)."""

    status = 409
    slug = "residency-policy-strands-resources"
    title = "Existing resources fall outside the new policy"
