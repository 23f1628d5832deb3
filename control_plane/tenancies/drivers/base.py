"""The one interface every tenancy driver implements, and the data it is handed.

The reconciler calls a driver's steps outside any database transaction and calls each
one again until it reports ``done``: a step must therefore be idempotent on the tenancy
id. It looks at what already exists (the Slurm account, the node's power state, the
simulated machine) and does only what is missing, so a retry after a crash never repeats
a side effect. A step that cannot finish yet (a node still booting) returns
``StepResult(done=False)`` and is called again after a back-off.

Errors are typed: :class:`RetryableError` (the peer is down, a timeout) is retried with
back-off; :class:`PermanentError` (bad image, node refused) fails the tenancy with its
message as the reason. Anything else is treated as retryable and logged.

Optional abilities are capability protocols (:class:`Resizable`), checked with
``isinstance``; the lifecycle never branches on the tenancy kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AllocatedNode",
    "Allocation",
    "Driver",
    "DriverError",
    "Health",
    "Observed",
    "PermanentError",
    "Resizable",
    "RetryableError",
    "StepResult",
    "TenancyKind",
]


class TenancyKind(StrEnum):
    BARE_METAL = "bare_metal"
    VM = "vm"
    KUBERNETES = "kubernetes"
    SLURM = "slurm"
    INFERENCE = "inference"  # a replica of an inference endpoint (managed by the endpoint)


@dataclass(frozen=True, slots=True)
class AllocatedNode:
    """One node of the placement, with the GPUs (by index on the node) it gives."""

    node_id: str
    hostname: str
    bmc_endpoint: str
    rack: str
    gpu_indices: tuple[int, ...]
    gpu_milli: int = 1000  # share of each GPU (thousandths); 1000 for whole GPUs
    whole_node: bool = False


@dataclass(frozen=True, slots=True)
class Allocation:
    """Everything a driver needs to build, change or tear down one tenancy."""

    tenancy_id: str
    org_id: str
    region: str
    kind: TenancyKind
    gpu_model: str
    nodes: tuple[AllocatedNode, ...]
    image: str | None = None
    ssh_public_keys: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    # What a managed tenancy runs (an inference replica's models); empty otherwise.
    workload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gpu_count(self) -> int:
        return sum(len(n.gpu_indices) for n in self.nodes)


@dataclass(frozen=True, slots=True)
class StepResult:
    """``done`` ends the step; ``detail`` becomes a tenancy event; ``facts`` are merged into
    what the tenant sees about the tenancy (account name, addresses), never secrets."""

    done: bool
    detail: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the driver sees of a tenancy right now."""

    exists: bool
    ready: bool
    detail: str = ""
    busy: bool | None = None  # workload running (jobs, processes); None when unknown
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str = ""


class DriverError(Exception):
    """Base of the errors a driver raises on purpose."""


class RetryableError(DriverError):
    """Try again later: the peer is unreachable, busy or timed out."""


class PermanentError(DriverError):
    """Retrying cannot help: the tenancy fails with this message as its reason."""


@runtime_checkable
class Driver(Protocol):
    """One tenancy kind in one region (``sim``, ``redfish``, ``slurm``, ...)."""

    name: str
    kind: TenancyKind
    simulated: bool  # shown to users wherever the tenancy appears

    async def validate(self, allocation: Allocation) -> None:
        """Refuse (PermanentError) what this driver cannot build, before any side effect."""

    async def provision(self, allocation: Allocation) -> StepResult:
        """Bring the tenancy up; idempotent, called until done."""

    async def describe(self, allocation: Allocation) -> Observed:
        """Observe the tenancy; no side effects."""

    async def release(self, allocation: Allocation) -> StepResult:
        """Take the tenant's access and workloads away; idempotent, called until done."""

    async def clean(self, allocation: Allocation) -> StepResult:
        """Wipe what the tenant left so the capacity can be reused; idempotent."""

    async def health(self) -> Health:
        """Whether the driver's peer (BMCs, slurmctld) answers."""


@runtime_checkable
class Resizable(Protocol):
    async def resize(self, allocation: Allocation, previous: Allocation) -> StepResult:
        """Move the tenancy from ``previous`` to ``allocation``; idempotent."""
