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

Optional abilities are capability protocols (:class:`Resizable`, :class:`PowerControl`,
:class:`HasConsole`, :class:`IssuesCredentials`), checked with ``isinstance``; the
lifecycle never branches on the tenancy kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AllocatedNode",
    "Allocation",
    "ConsoleAccess",
    "Credential",
    "Driver",
    "DriverError",
    "HasConsole",
    "Health",
    "IssuesCredentials",
    "Observed",
    "PermanentError",
    "PowerAction",
    "PowerControl",
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
    # Per GPU, in the order of ``gpu_indices``: its PCI address ("0000:3b:00.0") and NUMA
    # node, when the inventory recorded them (``None`` otherwise).
    gpu_pci_addresses: tuple[str | None, ...] = ()
    gpu_numa_nodes: tuple[int | None, ...] = ()
    # The node's host CPUs per NUMA node, as cpusets ({0: "0-31", 1: "32-63"}), when known.
    numa_cpus: Mapping[int, str] = field(default_factory=dict)


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
class Credential:
    """A secret the tenant uses to reach the tenancy (a kubeconfig). The control plane
    stores it only encrypted and shows it once."""

    kind: str  # "kubeconfig"
    value: bytes = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StepResult:
    """``done`` ends the step; ``detail`` becomes a tenancy event; ``facts`` are merged into
    what the tenant sees about the tenancy (account name, addresses), never secrets: a
    secret goes in ``credential``, which the reconciler stores encrypted."""

    done: bool
    detail: str = ""
    facts: Mapping[str, str] = field(default_factory=dict)
    credential: Credential | None = None


@dataclass(frozen=True, slots=True)
class ConsoleAccess:
    """Where a person reaches the machine's console, and until when the link works."""

    url: str = field(repr=False)  # carries a signed token
    protocol: str  # "vnc", "spice", "serial"
    expires_at: datetime


class PowerAction(StrEnum):
    START = "start"
    STOP = "stop"
    REBOOT = "reboot"


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


@runtime_checkable
class PowerControl(Protocol):
    async def power(self, allocation: Allocation, action: PowerAction) -> StepResult:
        """Start, stop (graceful, then forced) or reboot the machine; idempotent."""


@runtime_checkable
class HasConsole(Protocol):
    async def console(self, allocation: Allocation, ttl_seconds: int) -> ConsoleAccess:
        """A short-lived link to the machine's console; no side effect on the machine."""


@runtime_checkable
class IssuesCredentials(Protocol):
    async def issue_credentials(self, allocation: Allocation, *, rotate: bool) -> Credential:
        """A new short-lived credential; ``rotate`` first invalidates every earlier one."""
