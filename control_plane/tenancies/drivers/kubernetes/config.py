"""One region's GPU cluster, as the operator described it in ``CP_KUBERNETES_CLUSTERS``.

Read once when the driver is built, so a typo in a key fails the driver's construction
(and the operator sees it) instead of the first tenancy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane.settings import Settings

__all__ = ["FIELD_MANAGER", "ClusterConfig", "Quotas", "WorkspaceConfig"]

# Every object the driver applies is owned by this field manager (server-side apply): a
# field someone else changed is taken back on the next apply (force=True).
FIELD_MANAGER = "gpu-control-plane"

_KEYS = frozenset(
    {
        "server", "public_server", "ca_file", "token_secret", "version", "gpu_resource",
        "region_label", "gpu_label", "gpu_products", "gpu_taint", "storage_class",
    }
)  # fmt: skip
_REQUIRED = ("server", "token_secret")
_VERSION = re.compile(r"^1\.\d{2}$")


@dataclass(frozen=True, slots=True)
class Quotas:
    """What a tenancy may request per GPU it holds, and in storage overall."""

    cpu_per_gpu: int = 16
    memory_gib_per_gpu: int = 128
    storage_gib: int = 500


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """The Jupyter workspace preset."""

    image: str = "quay.io/jupyter/pytorch-notebook:cuda12-latest"
    storage_gib: int = 50


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How to reach one region's cluster and how its GPU nodes are labelled."""

    region: str
    server: str
    token_secret: str
    public_server: str = ""
    ca_file: Path | None = None
    version: str = "1.31"  # the API version the manifests are written (and tested) for
    gpu_resource: str = "nvidia.com/gpu"
    region_label: str = "topology.kubernetes.io/region"
    gpu_label: str = "nvidia.com/gpu.product"  # set by NVIDIA's GPU feature discovery
    gpu_products: Mapping[str, str] = field(default_factory=dict)
    gpu_taint: str = "nvidia.com/gpu"  # the taint that keeps other pods off GPU nodes
    storage_class: str | None = None
    token_ttl_seconds: int = 8 * 3600
    timeout_seconds: float = 30.0
    quotas: Quotas = field(default_factory=Quotas)
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)

    @classmethod
    def from_settings(cls, settings: Settings, region: str) -> ClusterConfig:
        raw: Mapping[str, Any] = settings.kubernetes_clusters.get(region, {})
        if not raw:
            raise ValueError(f"CP_KUBERNETES_CLUSTERS has no cluster for region {region!r}")
        unknown = set(raw) - _KEYS
        if unknown:
            raise ValueError(f"CP_KUBERNETES_CLUSTERS[{region!r}]: unknown keys {sorted(unknown)}")
        missing = [key for key in _REQUIRED if not raw.get(key)]
        if missing:
            raise ValueError(f"CP_KUBERNETES_CLUSTERS[{region!r}]: missing {missing}")
        version = str(raw.get("version", "1.31"))
        if not _VERSION.fullmatch(version):
            raise ValueError(f"CP_KUBERNETES_CLUSTERS[{region!r}]: version must be like 1.31")
        optional = {
            key: str(raw[key])
            for key in ("gpu_resource", "region_label", "gpu_label", "gpu_taint")
            if raw.get(key)
        }
        return cls(
            region=region,
            server=str(raw["server"]).rstrip("/"),
            token_secret=str(raw["token_secret"]),
            public_server=str(raw.get("public_server", "")).rstrip("/"),
            ca_file=Path(raw["ca_file"]) if raw.get("ca_file") else None,
            version=version,
            gpu_products={str(k): str(v) for k, v in dict(raw.get("gpu_products", {})).items()},
            storage_class=str(raw["storage_class"]) if raw.get("storage_class") else None,
            token_ttl_seconds=settings.kubernetes_token_ttl_seconds,
            timeout_seconds=settings.kubernetes_request_timeout_seconds,
            quotas=Quotas(
                cpu_per_gpu=settings.kubernetes_cpu_per_gpu,
                memory_gib_per_gpu=settings.kubernetes_memory_gib_per_gpu,
                storage_gib=settings.kubernetes_storage_gib,
            ),
            workspace=WorkspaceConfig(
                image=settings.kubernetes_jupyter_image,
                storage_gib=settings.kubernetes_workspace_storage_gib,
            ),
            **optional,
        )

    @property
    def tenant_server(self) -> str:
        """The API server URL written into tenants' kubeconfigs."""
        return self.public_server or self.server

    def gpu_product(self, gpu_model: str) -> str:
        """The node label value of a GPU model (the model's own name when not mapped)."""
        return self.gpu_products.get(gpu_model, gpu_model)
