"""Request and response bodies of the tenancies API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from control_plane.http.fields import Code
from control_plane.tenancies.drivers.base import PowerAction, TenancyKind

TenancyName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
        description="lower-case letters, digits and inner hyphens",
    ),
]
LabelKey = Annotated[
    str, Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
]
LabelValue = Annotated[str, Meta(max_length=63, pattern=r"^[A-Za-z0-9._-]*$")]
SshKey = Annotated[
    str,
    Meta(
        max_length=16_384,
        pattern=(
            r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com)"
            r" [A-Za-z0-9+/=]{16,} ?[^\x00-\x1f\x7f]*$"
        ),
        description="An OpenSSH public key line",
    ),
]
Image = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[a-z0-9][a-z0-9._:-]*$")]
GpuCount = Annotated[int, Meta(ge=1, le=64)]
NodeCount = Annotated[int, Meta(ge=1, le=64)]
GpuMilli = Annotated[int, Meta(ge=1, le=1000, description="share of each GPU in thousandths")]
ANY_REGION = "any"


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class Workspace(_In):
    """A developer workspace on a Kubernetes tenancy: a Jupyter server on the tenancy's GPUs
    that shuts itself down after ``idle_minutes`` without activity (its GPUs go idle)."""

    preset: Literal["jupyter"] = "jupyter"
    idle_minutes: Annotated[int, Meta(ge=5, le=1440)] = 60


class TenancyCreate(_In):
    """A new tenancy: a shape, or a GPU model (or class) and counts.

    ``region`` is a region code or ``"any"``: the cheapest region the residency policy
    allows that has room.
    """

    name: TenancyName
    kind: TenancyKind
    region: Annotated[str, Meta(min_length=2, max_length=32, pattern=r"^[a-z0-9-]+$")]
    shape: Code | None = None
    gpu_model: Code | None = None
    gpu_class: (
        Annotated[
            str,
            Meta(
                max_length=40,
                pattern=r"^[a-z0-9-]+$",
                description="a GPU generation (hopper, ampere, ada-lovelace): any model of it",
            ),
        ]
        | None
    ) = None
    gpus_per_node: GpuCount | None = None
    node_count: NodeCount = 1
    project_id: Annotated[str, Meta(max_length=40)] | None = None
    ends_at: datetime | None = None
    idle_release_minutes: Annotated[int, Meta(ge=5, le=10_080)] | None = None
    image: Image | None = None
    ssh_public_keys: Annotated[list[SshKey], Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    labels: Annotated[dict[LabelKey, LabelValue], Meta(max_length=32)] = msgspec.field(
        default_factory=dict
    )
    workspace: Workspace | None = None  # Kubernetes tenancies only


class TenancyResize(_In):
    """A new size: GPUs per node and nodes, and optionally another GPU model of the region
    or another share of each GPU (right-sizing); the tenancy is re-placed."""

    gpus_per_node: GpuCount
    node_count: NodeCount | None = None
    gpu_model: Code | None = None
    gpu_milli: Annotated[int, Meta(ge=1, le=1000, description="thousandths of each GPU")] | None = (
        None
    )


class TenancySchedule(_In):
    """When the tenancy gives its GPUs back by itself: after this many idle minutes
    (null: never)."""

    idle_release_minutes: Annotated[int, Meta(ge=5, le=10_080)] | None


class AllocationRead(msgspec.Struct):
    node_id: str
    hostname: str
    gpu_indices: list[int]
    gpu_milli: int


class TenancyRead(msgspec.Struct):
    id: str
    org_id: str
    project_id: str | None
    name: str
    kind: TenancyKind
    region: str
    gpu_model: str
    shape: str | None
    gpus_per_node: int
    node_count: int
    gpu_count: int
    state: str
    failure_reason: str | None
    driver: str
    simulated: bool
    facts: dict[str, str]
    image: str | None
    ssh_public_keys: list[str]
    labels: dict[str, str]
    ends_at: datetime | None
    idle_release_minutes: int | None
    allocations: list[AllocationRead]
    created_by: str
    created_at: datetime
    state_changed_at: datetime
    activated_at: datetime | None
    released_at: datetime | None
    pending_resize: bool
    last_error: str | None
    stuck_since: datetime | None = None  # flagged by the reconciler: an operator should look
    managed_by: str | None = None  # e.g. endpoint:ep_... (change it through its owner)
    workspace: Workspace | None = None


class TenancySpan(msgspec.Struct, frozen=True):
    """What the portal's summary and GPUs-held chart need of a tenancy: when it held how
    many GPUs where, and its state."""

    state: str
    region: str
    gpu_count: int
    simulated: bool
    created_at: datetime
    released_at: datetime | None


class PowerRequest(_In):
    action: PowerAction


class PowerResult(msgspec.Struct):
    tenancy_id: str
    action: PowerAction
    detail: str


class OperatorConsoleRequest(_In):
    """Why a provider operator opens a tenant's console (goes to the tenant's ledger)."""

    purpose: Annotated[str, Meta(min_length=5, max_length=200)]


class ConsoleRead(msgspec.Struct):
    """A console link carrying a signed token; it stops working at ``expires_at``."""

    url: str
    protocol: str
    expires_at: datetime


class CredentialRead(msgspec.Struct):
    """The tenancy's access credential, without its value."""

    kind: str
    issued_at: datetime
    expires_at: datetime
    shown: bool
    shown_at: datetime | None
    rotations: int


class CredentialReveal(msgspec.Struct):
    """The credential itself: returned once, then no longer kept."""

    kind: str
    value: str
    issued_at: datetime
    expires_at: datetime


class TenancyEventRead(msgspec.Struct):
    id: str
    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    detail: str
    actor: str


class ShapeCreate(_In):
    name: Code
    gpu_model: Code
    gpus_per_node: GpuCount
    # msgspec bounds only int and float: the range is checked in shapes.create_shape.
    hourly_price: Annotated[Decimal, Meta(description="per hour of the whole shape, 0 to 1e6")]
    node_count: NodeCount = 1
    gpu_milli: GpuMilli = 1000
    interconnect: Literal["nvlink", "pcie"] = "pcie"
    description: Annotated[str, Meta(max_length=200)] = ""


class ShapeRead(msgspec.Struct):
    id: str
    region: str
    name: str
    description: str
    gpu_model: str
    gpu_memory_gib: int
    gpus_per_node: int
    node_count: int
    gpu_milli: int
    interconnect: str
    hourly_price: Decimal
    currency: str


class WorkloadProfile(_In):
    """What a workload needs; the answer is the cheapest shape that fits it."""

    gpu_memory_gib: Annotated[int, Meta(ge=1, le=100_000)]
    gpu_count: GpuCount = 1
    interconnect: Literal["nvlink", "any"] = "any"
    region: Annotated[str, Meta(min_length=2, max_length=32)] = ANY_REGION


class ShapeSuggestion(msgspec.Struct):
    shape: ShapeRead | None
    reason: str
    alternatives: list[ShapeRead]


class QuotaSet(_In):
    max_gpus: Annotated[int, Meta(ge=0, le=100_000)]
    org_id: Annotated[str, Meta(max_length=40)] = "*"
    region: Annotated[str, Meta(max_length=32)] = "*"
    gpu_model: Annotated[str, Meta(max_length=32)] = "*"


class QuotaRead(msgspec.Struct):
    org_id: str
    region: str
    gpu_model: str
    max_gpus: int
    in_use: int | None = None
