"""What the tenancy pages share: labels for kinds and states, the organization a page
acts on, the drivers and the reconciler's wake-up, and quotas as the panel shows them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter

from control_plane.identity.authz import TenantScope
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.schemas import QuotaRead

TenancyId = Annotated[str, Parameter(max_length=40)]
Filter = Annotated[str | None, Parameter(max_length=32)]
Done = Annotated[str | None, Parameter(max_length=20)]
KIND_LABELS: dict[str, str] = {
    TenancyKind.BARE_METAL: "Bare metal",
    TenancyKind.VM: "Virtual machine",
    TenancyKind.KUBERNETES: "Kubernetes namespace",
    TenancyKind.SLURM: "Slurm account",
}
STATE_LABELS: dict[str, str] = {s.value: s.value.capitalize() for s in TenancyState}
LABELS: dict[str, Any] = {"kind_labels": KIND_LABELS, "tenancy_states": STATE_LABELS}


def org_of(scope: TenantScope) -> str | None:
    return scope.principal.default_org_id


def drivers_of(request: Request[Any, Any, Any]) -> Drivers:
    drivers: Drivers = request.app.state.drivers
    return drivers


def quota_rows(items: Sequence[QuotaRead]) -> list[dict[str, Any]]:
    """Quotas as the panel shows them: where each applies, its limit and what is held."""
    return [
        {
            "where": " · ".join(
                p for p in (q.region if q.region != "*" else "all regions",
                            q.gpu_model.upper() if q.gpu_model != "*" else "all GPU models")
            ),
            "max": q.max_gpus,
            "used": q.in_use or 0,
            "mine": q.org_id != "*",
        }
        for q in items
    ]  # fmt: skip
