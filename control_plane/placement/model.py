"""The plain data placement works on: nodes as they stand, a request, and the answer.

Everything here is immutable; the engine never reads a clock, a file or a database.
GPU shares are integers in thousandths of a GPU ("milli-GPU"): 1000 is a whole GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FULL_GPU",
    "GpuFree",
    "NodeState",
    "Placement",
    "Refusal",
    "Request",
    "Slot",
]

FULL_GPU = 1000


@dataclass(frozen=True, slots=True)
class GpuFree:
    """One GPU of a node: its index on the node and how much of it is free."""

    index: int
    free_milli: int  # 0..1000
    nvlink_domain: str | None = None  # GPUs sharing a domain talk over NVLink


@dataclass(frozen=True, slots=True)
class NodeState:
    """A node as placement sees it right now.

    ``cpu_free_milli`` and ``memory_free_mib`` are what is left; a caller that does not
    track them passes large numbers (0 means "nothing left"). ``fabric`` groups nodes a
    multi-node request may span (the rack when None)."""

    id: str
    region: str
    rack: str
    gpu_model: str
    gpus: tuple[GpuFree, ...]
    cpu_free_milli: int = 0
    memory_free_mib: int = 0
    schedulable: bool = True
    fabric: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """What a tenancy or endpoint asks for.

    ``regions`` are the allowed regions in preference order (the residency policy's
    allow-list, e.g. cheapest first); placement never leaves them. ``gpu_count`` is GPUs
    per node (0 for a CPU-only request); ``gpu_milli`` < 1000 asks for a share of one
    GPU. ``alternative_regions`` are other regions the policy allows but the caller did
    not ask for: they are only ever *suggested* in a refusal, never placed in."""

    regions: tuple[str, ...]
    gpu_models: tuple[str, ...]
    gpu_count: int
    node_count: int = 1
    gpu_milli: int = FULL_GPU
    whole_node: bool = False
    cpu_milli: int = 0
    memory_mib: int = 0
    alternative_regions: tuple[str, ...] = ()

    @property
    def is_share(self) -> bool:
        """A fraction of one GPU (an inference replica), not whole GPUs."""
        return self.gpu_count == 1 and self.gpu_milli < FULL_GPU

    @property
    def gpu_milli_per_node(self) -> int:
        return self.gpu_count * self.gpu_milli


@dataclass(frozen=True, slots=True)
class Slot:
    """One GPU (or a share of one) given to the request."""

    node_id: str
    gpu_index: int
    milli: int


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request goes. ``cpu_milli``/``memory_mib`` are taken on *each* node;
    ``whole_node`` means the nodes are taken entirely (bare metal)."""

    region: str
    gpu_model: str
    slots: tuple[Slot, ...]
    node_ids: tuple[str, ...]
    cpu_milli: int = 0
    memory_mib: int = 0
    whole_node: bool = False

    @property
    def gpu_milli(self) -> int:
        """Total milli-GPU placed."""
        return sum(s.milli for s in self.slots)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request cannot be placed, and what would fit instead.

    ``reason`` is a stable code: ``invalid-request``, ``no-allowed-region``,
    ``no-such-gpu-model``, ``no-schedulable-nodes``, ``insufficient-capacity``."""

    reason: str
    detail: str
    suggestions: tuple[str, ...] = ()
