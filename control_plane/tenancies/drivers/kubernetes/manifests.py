"""The objects that make up a Kubernetes tenancy, built from its allocation: pure data.

A tenancy is one namespace (``cp-<tenancy id>``) holding:

- a **ResourceQuota**: ``requests.nvidia.com/gpu`` = the tenancy's GPU count (extended
  resources can only be limited on requests), CPU and memory at fixed ratios per GPU,
  storage;
- a **LimitRange** giving every container default requests and limits, so a pod written
  without them is still admitted under the quota (a quota on ``limits.cpu`` otherwise
  rejects it);
- two **NetworkPolicies**: deny everything, then allow traffic between the namespace's own
  pods and DNS lookups to the cluster's resolver;
- a **ServiceAccount** ``tenant`` whose bound tokens make the tenant's kubeconfig;
- a **Role** ``tenant`` (workloads, services, volumes, logs, exec, port-forward; quotas and
  policies read-only; no RBAC) bound to the organization's group ``cp:org:<org id>`` (for
  clusters that authenticate people through OIDC) and to the ServiceAccount.

Pods stay on the region's nodes of the placed GPU model because a namespace cannot carry
affinity itself: its annotations feed two admission plugins the cluster must enable,
PodNodeSelector (``scheduler.alpha.kubernetes.io/node-selector`` is merged into every pod's
nodeSelector, a conflicting pod is refused) and PodTolerationRestriction (default
tolerations for the GPU taint, and a whitelist so a pod cannot tolerate other taints).
Pods the driver itself writes (the workspace) also carry explicit affinity and tolerations,
so they land right even where those plugins are off.

Every object carries the tenancy and organization ids as labels.
"""

from __future__ import annotations

import json
import re
from typing import Any

from control_plane.tenancies.drivers.base import Allocation
from control_plane.tenancies.drivers.kubernetes.config import ClusterConfig

__all__ = [
    "MANAGED_BY",
    "ORG_LABEL",
    "QUOTA",
    "SERVICE_ACCOUNT",
    "TENANCY_LABEL",
    "Manifest",
    "group_name",
    "label_value_problem",
    "labels",
    "metadata",
    "namespace_name",
    "node_affinity",
    "node_selector",
    "quota",
    "tenancy_manifests",
    "tolerations",
]

Manifest = dict[str, Any]

TENANCY_LABEL = "cp.example/tenancy"
ORG_LABEL = "cp.example/org"
MANAGED_BY = "gpu-control-plane"
SERVICE_ACCOUNT = "tenant"
ROLE = "tenant"
QUOTA = "gpus"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# Container defaults the LimitRange fills in: enough for a small helper pod, never a GPU.
_DEFAULT_LIMITS = {"cpu": "1", "memory": "2Gi"}
_DEFAULT_REQUESTS = {"cpu": "250m", "memory": "512Mi"}
_WRITE = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
_READ = ["get", "list", "watch"]


def namespace_name(allocation: Allocation) -> str:
    """``cp-`` + the tenancy id, lower case with ``_`` as ``-``: a valid DNS-1123 label.

    Raises ValueError for an id that cannot make one (the driver refuses it for good).
    """
    name = "cp-" + allocation.tenancy_id.lower().replace("_", "-")
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        raise ValueError(f"tenancy id {allocation.tenancy_id!r} cannot name a namespace")
    return name


def label_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be a label value, or None when it can."""
    if len(value) > 63 or (value and not _LABEL_VALUE.fullmatch(value)):
        return f"{value!r} is not a valid label value"
    return None


def group_name(allocation: Allocation) -> str:
    """The group the cluster's authenticator gives the organization's people."""
    return f"cp:org:{allocation.org_id}"


def labels(allocation: Allocation) -> dict[str, str]:
    return {
        TENANCY_LABEL: allocation.tenancy_id,
        ORG_LABEL: allocation.org_id,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def metadata(allocation: Allocation, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace_name(allocation), "labels": labels(allocation),
            **extra}  # fmt: skip


def node_selector(allocation: Allocation, config: ClusterConfig) -> dict[str, str]:
    """The node labels every pod of the tenancy must match."""
    return {
        config.region_label: allocation.region,
        config.gpu_label: config.gpu_product(allocation.gpu_model),
    }


def node_affinity(allocation: Allocation, config: ClusterConfig) -> dict[str, Any]:
    expressions = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in node_selector(allocation, config).items()
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def tolerations(config: ClusterConfig) -> list[dict[str, str]]:
    return [{"key": config.gpu_taint, "operator": "Exists", "effect": "NoSchedule"}]


def namespace(allocation: Allocation, config: ClusterConfig) -> Manifest:
    selector = ",".join(f"{k}={v}" for k, v in node_selector(allocation, config).items())
    allowed = json.dumps(tolerations(config), separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace_name(allocation),
            # baseline: no privileged pods, host namespaces or host paths for tenants
            "labels": {**labels(allocation), "pod-security.kubernetes.io/enforce": "baseline"},
            "annotations": {
                "scheduler.alpha.kubernetes.io/node-selector": selector,
                "scheduler.alpha.kubernetes.io/defaultTolerations": allowed,
                "scheduler.alpha.kubernetes.io/tolerationsWhitelist": allowed,
            },
        },
    }


def quota(allocation: Allocation, config: ClusterConfig) -> Manifest:
    gpus = allocation.gpu_count
    cpu = str(config.quotas.cpu_per_gpu * gpus)
    memory = f"{config.quotas.memory_gib_per_gpu * gpus}Gi"
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": metadata(allocation, QUOTA),
        "spec": {
            "hard": {
                f"requests.{config.gpu_resource}": str(gpus),
                "requests.cpu": cpu,
                "limits.cpu": cpu,
                "requests.memory": memory,
                "limits.memory": memory,
                "requests.storage": f"{config.quotas.storage_gib}Gi",
            }
        },
    }


def limit_range(allocation: Allocation) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": metadata(allocation, "defaults"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": dict(_DEFAULT_LIMITS),
                    "defaultRequest": dict(_DEFAULT_REQUESTS),
                }
            ]
        },
    }


def network_policies(allocation: Allocation) -> list[Manifest]:
    same_namespace: list[dict[str, Any]] = [{"podSelector": {}}]
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    deny: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(allocation, "default-deny"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    allow: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(allocation, "allow-same-namespace"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": same_namespace}],
            "egress": [{"to": same_namespace}, dns],
        },
    }
    return [deny, allow]


def service_account(allocation: Allocation) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(allocation, SERVICE_ACCOUNT),
        "automountServiceAccountToken": False,
    }


def role(allocation: Allocation) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(allocation, ROLE),
        "rules": [
            {
                "apiGroups": [""],
                "resources": [
                    "pods",
                    "pods/log",
                    "pods/exec",
                    "pods/attach",
                    "pods/portforward",
                    "services",
                    "configmaps",
                    "secrets",
                    "persistentvolumeclaims",
                ],
                "verbs": _WRITE,
            },
            {
                "apiGroups": [""],
                "resources": ["events", "resourcequotas", "limitranges", "endpoints"],
                "verbs": _READ,
            },
            {
                "apiGroups": ["apps"],
                "resources": ["deployments", "statefulsets", "replicasets"],
                "verbs": _WRITE,
            },
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": _WRITE},
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["networkpolicies"],
                "verbs": _READ,
            },
        ],
    }


def role_binding(allocation: Allocation) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(allocation, ROLE),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": group_name(allocation),
            },
            {
                "kind": "ServiceAccount",
                "name": SERVICE_ACCOUNT,
                "namespace": namespace_name(allocation),
            },
        ],
    }


def tenancy_manifests(allocation: Allocation, config: ClusterConfig) -> list[Manifest]:
    """Every object of the tenancy, namespace first (the others live in it)."""
    return [
        namespace(allocation, config),
        quota(allocation, config),
        limit_range(allocation),
        *network_policies(allocation),
        service_account(allocation),
        role(allocation),
        role_binding(allocation),
    ]
