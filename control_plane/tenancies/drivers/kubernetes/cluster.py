"""The few API server calls the driver makes, through the official ``kubernetes`` client.

The client is synchronous: every call runs in a worker thread with a time limit. Its
errors become the driver's typed errors here, so the driver never sees an HTTP status:
an unreachable server, 5xx, 429, 409 and 401/403 (credentials or RBAC the operator can fix,
a namespace still terminating) are retryable; 400 and 422 (a manifest the server refuses)
are permanent. A 404 is an answer ("not there"), returned as ``None``.

Writes are server-side applies (``application/apply-patch+yaml``, field manager
``gpu-control-plane``, ``force=true``): applying the same manifest again changes nothing,
which is what makes ``provision`` idempotent without reading first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from control_plane.tenancies.drivers.base import PermanentError, RetryableError
from control_plane.tenancies.drivers.kubernetes.config import FIELD_MANAGER, ClusterConfig
from control_plane.tenancies.drivers.kubernetes.manifests import Manifest

__all__ = ["APPLY_CONTENT_TYPE", "Cluster", "IssuedToken"]

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
_T = TypeVar("_T")
_PERMANENT_STATUSES = frozenset({400, 422})
# kind -> (API group class, method applying it); namespaced unless it is the Namespace
_APPLY: dict[str, tuple[str, str]] = {
    "Namespace": ("core", "patch_namespace"),
    "ResourceQuota": ("core", "patch_namespaced_resource_quota"),
    "LimitRange": ("core", "patch_namespaced_limit_range"),
    "ServiceAccount": ("core", "patch_namespaced_service_account"),
    "PersistentVolumeClaim": ("core", "patch_namespaced_persistent_volume_claim"),
    "Pod": ("core", "patch_namespaced_pod"),
    "Service": ("core", "patch_namespaced_service"),
    "NetworkPolicy": ("networking", "patch_namespaced_network_policy"),
    "Role": ("rbac", "patch_namespaced_role"),
    "RoleBinding": ("rbac", "patch_namespaced_role_binding"),
}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime


def _reason(exc: ApiException) -> str:
    """The ``message`` of the API server's Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


def _drain(response: object) -> None:
    """Read an unparsed answer to its end, so its connection goes back to the pool.

    Deletes are not parsed: a namespace DELETE answers with the Namespace, not a Status.
    """
    drain = getattr(response, "drain_conn", None)
    if callable(drain):
        drain()


class Cluster:
    """One region's API server, reached with the driver's own (admin) token."""

    def __init__(self, config: ClusterConfig, token: str) -> None:
        configuration = client.Configuration(
            host=config.server,
            api_key={"BearerToken": token},
            api_key_prefix={"BearerToken": "Bearer"},
            ssl_ca_cert=str(config.ca_file) if config.ca_file else None,
        )
        self._timeout = config.timeout_seconds
        self.unauthorized = False  # the server refused the token: the driver reveals it again
        api = client.ApiClient(configuration)
        self._apis: dict[str, Any] = {
            "core": client.CoreV1Api(api),
            "networking": client.NetworkingV1Api(api),
            "rbac": client.RbacAuthorizationV1Api(api),
            "version": client.VersionApi(api),
        }

    async def _call(
        self, what: str, call: Callable[[], _T], *, missing_ok: bool = False
    ) -> _T | None:
        """Run ``call`` in a thread; map its failures to the driver's errors."""
        try:
            return await asyncio.to_thread(call)
        except ApiException as exc:
            if exc.status == 404 and missing_ok:
                return None
            self.unauthorized = self.unauthorized or exc.status == 401
            message = f"{what}: {exc.status} {_reason(exc)}"
            if exc.status in _PERMANENT_STATUSES:
                raise PermanentError(message) from exc
            raise RetryableError(message) from exc
        except (HTTPError, OSError) as exc:
            raise RetryableError(f"{what}: API server unreachable ({exc})") from exc

    async def apply(self, manifest: Manifest) -> None:
        """Server-side apply of one object (create or update, idempotent)."""
        kind = manifest["kind"]
        group, method = _APPLY[kind]
        call = getattr(self._apis[group], method)
        name = manifest["metadata"]["name"]
        position = (name,) if kind == "Namespace" else (name, manifest["metadata"]["namespace"])
        await self._call(
            f"apply {kind} {name}",
            lambda: call(
                *position, manifest, field_manager=FIELD_MANAGER, force=True,
                _content_type=APPLY_CONTENT_TYPE, _request_timeout=self._timeout,
            ),
        )  # fmt: skip

    async def namespace_phase(self, name: str) -> str | None:
        """``Active`` or ``Terminating``; None when there is no such namespace."""
        core = self._apis["core"]
        found = await self._call(
            f"read namespace {name}",
            lambda: core.read_namespace(name, _request_timeout=self._timeout),
            missing_ok=True,
        )
        if found is None:
            return None
        return str(found.status.phase) if found.status and found.status.phase else "Active"

    async def quota_hard(self, namespace: str, name: str) -> dict[str, str] | None:
        core = self._apis["core"]
        found = await self._call(
            f"read quota {namespace}/{name}",
            lambda: core.read_namespaced_resource_quota(
                name, namespace, _request_timeout=self._timeout
            ),
            missing_ok=True,
        )
        if found is None:
            return None
        return dict(found.spec.hard or {}) if found.spec else {}

    async def service_account_uid(self, namespace: str, name: str) -> str | None:
        core = self._apis["core"]
        found = await self._call(
            f"read service account {namespace}/{name}",
            lambda: core.read_namespaced_service_account(
                name, namespace, _request_timeout=self._timeout
            ),
            missing_ok=True,
        )
        return str(found.metadata.uid) if found is not None else None

    async def pod_phases(self, namespace: str) -> dict[str, str]:
        """Every pod of the namespace, by name, with its phase."""
        core = self._apis["core"]
        found = await self._call(
            f"list pods in {namespace}",
            lambda: core.list_namespaced_pod(namespace, _request_timeout=self._timeout),
            missing_ok=True,
        )
        if found is None:
            return {}
        return {
            pod.metadata.name: str(pod.status.phase if pod.status else "Pending")
            for pod in found.items
        }

    async def delete_namespace(self, name: str) -> None:
        """Start deleting a namespace and everything in it (no-op when already gone)."""
        core = self._apis["core"]
        await self._call(
            f"delete namespace {name}",
            lambda: _drain(
                core.delete_namespace(
                    name, propagation_policy="Background", _request_timeout=self._timeout,
                    _preload_content=False,
                )
            ),
            missing_ok=True,
        )  # fmt: skip

    async def delete_pod(self, namespace: str, name: str) -> None:
        core = self._apis["core"]
        await self._call(
            f"delete pod {namespace}/{name}",
            lambda: _drain(
                core.delete_namespaced_pod(
                    name, namespace, _request_timeout=self._timeout, _preload_content=False
                )
            ),
            missing_ok=True,
        )

    async def delete_service_account(self, namespace: str, name: str) -> None:
        core = self._apis["core"]
        await self._call(
            f"delete service account {namespace}/{name}",
            lambda: _drain(
                core.delete_namespaced_service_account(
                    name, namespace, _request_timeout=self._timeout, _preload_content=False
                )
            ),
            missing_ok=True,
        )

    async def request_token(self, namespace: str, name: str, seconds: int) -> IssuedToken:
        """A bound token of a ServiceAccount (TokenRequest), for the API server's audience."""
        core = self._apis["core"]
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        started = datetime.now(UTC)
        # the generated method ignores ``_content_type`` (its spec declares no body media
        # type) and would send no Content-Type at all, which the API server refuses (415)
        issued = await self._call(
            f"token for {namespace}/{name}",
            lambda: core.create_namespaced_service_account_token(
                name, namespace, body, _headers={"Content-Type": "application/json"},
                _request_timeout=self._timeout,
            ),
        )  # fmt: skip
        if issued is None or issued.status is None or not issued.status.token:
            raise RetryableError(f"token for {namespace}/{name}: empty TokenRequest answer")
        # the server may shorten the lifetime; without a timestamp, assume the asked one
        expires = issued.status.expiration_timestamp or started + timedelta(seconds=seconds)
        return IssuedToken(issued.status.token, expires)

    async def version(self) -> str:
        api = self._apis["version"]
        info = await self._call("version", lambda: api.get_code(_request_timeout=self._timeout))
        return str(info.git_version) if info is not None else "unknown"
