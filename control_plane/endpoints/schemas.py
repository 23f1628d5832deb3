"""Request and response bodies of the endpoints API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from control_plane.http.fields import Code, Slug


class Backend(StrEnum):
    """Triton backends a model version may use (as Triton names them)."""

    PYTHON = "python"
    ONNXRUNTIME = "onnxruntime"
    PYTORCH = "pytorch"
    TENSORRT = "tensorrt"
    VLLM = "vllm"


class EndpointState(StrEnum):
    DEPLOYING = "deploying"  # replicas asked for, none ready yet
    READY = "ready"  # at least one replica serves
    SCALED_TO_ZERO = "scaled-to-zero"  # no replica; the next request starts one
    AWAITING_APPROVAL = "awaiting-approval"  # no version approved for production yet
    DEGRADED = "degraded"  # replicas asked for are failing
    DELETING = "deleting"
    DELETED = "deleted"


class Approval(StrEnum):
    NOT_REQUIRED = "not-required"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


ModelUri = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=500,
        pattern=r"^(file://)?/[^\x00-\x1f\x7f]+$",
        description="the model repository directory: file:///srv/models/<region>/<model>",
    ),
]
Replicas = Annotated[int, Meta(ge=0, le=16)]
Percent = Annotated[int, Meta(ge=0, le=100)]
Note = Annotated[str, Meta(max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class EndpointCreate(_In):
    """A new endpoint serving one model version; ``gpu_milli`` below 1000 asks for a
    fraction of one GPU per replica, otherwise ``gpus`` whole GPUs."""

    name: Slug
    region: Annotated[str, Meta(min_length=2, max_length=32, pattern=r"^[a-z0-9-]+$")]
    model_uri: ModelUri
    gpu_model: Code
    backend: Backend = Backend.PYTHON
    gpus: Annotated[int, Meta(ge=1, le=8)] = 1
    gpu_milli: Annotated[int, Meta(ge=1, le=1000)] = 1000
    min_replicas: Replicas = 1
    max_replicas: Replicas = 1
    target_tokens_per_s: Annotated[int, Meta(ge=1, le=1_000_000)] = 200
    target_queue_per_replica: Annotated[int, Meta(ge=1, le=10_000)] = 4
    scale_to_zero_after_s: Annotated[int, Meta(ge=30, le=604_800)] | None = None
    project_id: Annotated[str, Meta(max_length=40)] | None = None


class VersionCreate(_In):
    """Another model version; it gets ``traffic_percent`` of the requests (a canary),
    taken from the other versions in proportion."""

    model_uri: ModelUri
    traffic_percent: Percent = 0


class TrafficSplit(_In):
    """Shares of the traffic by version number; they must add up to 100."""

    percent: Annotated[dict[str, Percent], Meta(min_length=1, max_length=2)]


class ScaleSet(_In):
    min_replicas: Replicas
    max_replicas: Replicas
    replicas: Replicas | None = None  # pin the current count (within min..max)


class ApprovalDecision(_In):
    decision: Literal["approve", "reject"]
    note: Note = ""


class GovernanceSet(_In):
    require_approval: bool


class GovernanceRead(msgspec.Struct):
    org_id: str
    require_approval: bool
    updated_by: str | None
    updated_at: datetime | None


class VersionRead(msgspec.Struct):
    id: str
    number: int
    model_uri: str
    store_region: str
    weights_sha256: str
    license: str
    served_model: str
    approval: Approval
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    traffic_percent: int
    serving: bool  # takes production traffic now
    io: dict[str, Any]
    created_by: str
    created_at: datetime


class ReplicaRead(msgspec.Struct):
    tenancy_id: str
    state: str
    ready: bool
    last_error: str | None


class EndpointRead(msgspec.Struct):
    id: str
    org_id: str
    project_id: str | None
    name: str
    region: str
    backend: Backend
    gpu_model: str
    gpus_per_replica: int
    gpu_milli: int
    min_replicas: int
    max_replicas: int
    desired_replicas: int
    ready_replicas: int
    target_tokens_per_s: int
    target_queue_per_replica: int
    scale_to_zero_after_s: int | None
    state: EndpointState
    versions: list[VersionRead]
    replicas: list[ReplicaRead]
    url: str  # the gateway's OpenAI-compatible base URL
    created_by: str
    created_at: datetime
    updated_at: datetime


class EndpointEventRead(msgspec.Struct):
    id: str
    at: datetime
    kind: str
    detail: str
    actor: str


class DriftRead(msgspec.Struct):
    statistic: float | None  # two-sample Kolmogorov-Smirnov; None until 50 of each
    shifted: bool
    baseline_n: int
    recent_n: int
    baseline_median: float | None
    recent_median: float | None


class EndpointMetricsRead(msgspec.Struct):
    """What this control-plane process's gateway saw of the endpoint since it started."""

    endpoint_id: str
    requests: int
    errors: int
    tokens_in: int
    tokens_out: int
    in_flight: int
    tokens_per_second: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    ttft_ms_p99: float | None
    drift: dict[str, DriftRead]
