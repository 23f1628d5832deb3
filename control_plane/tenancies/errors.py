"""Problems the tenancies API answers with (documented in docs/problems.md)."""

from __future__ import annotations

from control_plane.errors import ProblemError


class InsufficientCapacity(ProblemError):
    """No allowed place has room; ``extra`` carries ``reason`` and ``suggestions``."""

    status = 409
    slug = "insufficient-capacity"
    title = "Not enough free capacity"


class QuotaExceeded(ProblemError):
    """The organization's GPU quota for the region and model would be passed; ``extra``
    carries ``limit``, ``in_use`` and ``requested`` (GPUs)."""

    status = 409
    slug = "quota-exceeded"
    title = "GPU quota exceeded"
