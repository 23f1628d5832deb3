"""The Jupyter workspace preset: a GPU notebook server that stops itself when idle.

Asked for with ``Allocation.workload == {"preset": "jupyter", "idle_minutes": N}``
(optionally ``"image"``). The driver then also applies, in the tenancy's namespace, a home
volume (PVC ``workspace-home``), a **bare Pod** ``workspace`` with ``restartPolicy: Never``
and a ClusterIP Service ``workspace`` on port 8888.

The idle-shutdown chain, end to end:

1. Jupyter culls kernels idle for N minutes (``MappingKernelManager.cull_idle_timeout``,
   connected or not) and terminals likewise (``TerminalManager.cull_inactive_timeout``);
2. with no kernel or terminal left and no request for N minutes, the server exits
   (``ServerApp.shutdown_no_activity_timeout``); an open browser tab keeps polling the
   server and so counts as activity;
3. the process exits 0, so the Pod ends ``Succeeded`` and is never restarted (a Deployment
   would start it again and keep the GPU); a finished pod holds no GPU on its node and no
   quota;
4. ``describe`` then finds no Running pod in the namespace: ``busy=False``;
5. after the tenancy's ``idle_release_minutes`` with ``busy=False``, the control plane
   releases the tenancy, which deletes the namespace (and the home volume with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control_plane.tenancies.drivers.base import Allocation
from control_plane.tenancies.drivers.kubernetes.config import ClusterConfig
from control_plane.tenancies.drivers.kubernetes.manifests import (
    Manifest,
    labels,
    metadata,
    namespace_name,
    node_affinity,
    tolerations,
)

__all__ = [
    "HOME",
    "POD",
    "PORT",
    "SERVICE",
    "WorkspacePreset",
    "workspace_facts",
    "workspace_manifests",
]

POD = "workspace"
SERVICE = "workspace"
HOME = "workspace-home"
PORT = 8888
_KEYS = frozenset({"preset", "idle_minutes", "image"})
_CULL_INTERVAL_SECONDS = 60
# jovyan, group users: the Jupyter Docker Stacks' own non-root user
_UID, _GID = 1000, 100


@dataclass(frozen=True, slots=True)
class WorkspacePreset:
    idle_minutes: int
    image: str | None = None

    @classmethod
    def from_workload(cls, workload: Mapping[str, Any]) -> WorkspacePreset | None:
        """The preset an allocation asks for; None without one. ValueError when malformed."""
        if not workload:
            return None
        if workload.get("preset") != "jupyter":
            raise ValueError(f"unknown workload preset {workload.get('preset')!r} (jupyter)")
        unknown = set(workload) - _KEYS
        if unknown:
            raise ValueError(f"the jupyter preset takes no {sorted(unknown)}")
        idle = workload.get("idle_minutes")
        if not isinstance(idle, int) or isinstance(idle, bool) or not 5 <= idle <= 24 * 60:
            raise ValueError("the jupyter preset needs idle_minutes between 5 and 1440")
        image = workload.get("image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise ValueError("the jupyter preset's image must be an image reference")
        return cls(idle_minutes=idle, image=image)


def _workspace_labels(allocation: Allocation) -> dict[str, str]:
    return {**labels(allocation), "app.kubernetes.io/name": "jupyter-workspace"}


def jupyter_args(idle_minutes: int) -> list[str]:
    """Jupyter's own culling and shutdown flags: the server exits after N idle minutes."""
    seconds = idle_minutes * 60
    return [
        "start-notebook.py",
        f"--ServerApp.shutdown_no_activity_timeout={seconds}",
        f"--MappingKernelManager.cull_idle_timeout={seconds}",
        f"--MappingKernelManager.cull_interval={_CULL_INTERVAL_SECONDS}",
        "--MappingKernelManager.cull_connected=True",
        "--MappingKernelManager.cull_busy=False",
        f"--TerminalManager.cull_inactive_timeout={seconds}",
        f"--TerminalManager.cull_interval={_CULL_INTERVAL_SECONDS}",
    ]


def _home(allocation: Allocation, config: ClusterConfig) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{config.workspace.storage_gib}Gi"}},
    }
    if config.storage_class:
        spec["storageClassName"] = config.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(allocation, HOME),
        "spec": spec,
    }


def _resources(allocation: Allocation, config: ClusterConfig) -> dict[str, Any]:
    """All of the tenancy's GPUs, and CPU and memory at the quota's ratios."""
    gpus = allocation.gpu_count
    amounts = {
        "cpu": str(config.quotas.cpu_per_gpu * gpus),
        "memory": f"{config.quotas.memory_gib_per_gpu * gpus}Gi",
        config.gpu_resource: str(gpus),
    }
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _pod(allocation: Allocation, config: ClusterConfig, preset: WorkspacePreset) -> Manifest:
    container = {
        "name": "jupyter",
        "image": preset.image or config.workspace.image,
        "args": jupyter_args(preset.idle_minutes),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": _resources(allocation, config),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "home", "mountPath": "/home/jovyan"},
            # PyTorch data loaders share tensors through /dev/shm (a container gets 64 MiB)
            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**metadata(allocation, POD), "labels": _workspace_labels(allocation)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": _UID,
                "runAsGroup": _GID,
                "fsGroup": _GID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "affinity": node_affinity(allocation, config),
            "tolerations": tolerations(config),
            "containers": [container],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": HOME}},
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
            ],
        },
    }


def _service(allocation: Allocation) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(allocation, SERVICE),
        "spec": {
            "type": "ClusterIP",
            "selector": _workspace_labels(allocation),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def workspace_manifests(
    allocation: Allocation, config: ClusterConfig, preset: WorkspacePreset
) -> list[Manifest]:
    """Home volume first (the pod mounts it), then the pod and its service."""
    return [_home(allocation, config), _pod(allocation, config, preset), _service(allocation)]


def workspace_facts(allocation: Allocation) -> dict[str, str]:
    """How to reach the workspace (no secret: the token is in the pod's own log)."""
    ns = namespace_name(allocation)
    return {
        "workspace": f"kubectl -n {ns} port-forward svc/{SERVICE} {PORT}:{PORT}",
        "workspace_url": f"http://127.0.0.1:{PORT}/lab",
        "workspace_token": f"kubectl -n {ns} logs pod/{POD} | grep token=",
    }
