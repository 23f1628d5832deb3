"""Inference endpoints through the SDK: deploy a model, follow it until it serves, add a
canary version, split traffic, scale, approve versions, delete. Calling the model goes
through the gateway's OpenAI-compatible API (``openai.OpenAI(base_url=endpoint.url,
api_key=...)``) or KServe V2 (``tritonclient.http``)::

    with Client(url, api_key) as client:
        ep = client.endpoints.create("chat", "ca-qc-1", "file:///srv/models/ca-qc-1/tiny",
                                     gpu_model="l40s", gpu_milli=250)
        client.endpoints.wait(ep.name, "ready")
"""

from __future__ import annotations

import time
from typing import Any

from control_plane.endpoints.schemas import (
    EndpointEventRead,
    EndpointRead,
    GovernanceRead,
)
from control_plane.sdk.errors import SdkError
from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.resources import API, _OrgScoped, _seg, _without_none

__all__ = ["EndpointWaitError", "Endpoints"]


class EndpointWaitError(SdkError):
    """The endpoint did not reach the state waited for in time."""

    def __init__(self, endpoint: EndpointRead, wanted: str, timeout: float) -> None:
        self.endpoint = endpoint
        super().__init__(
            f"endpoint {endpoint.name} is {endpoint.state} after {timeout:g} s "
            f"(waiting for {wanted})"
        )


class Endpoints(_OrgScoped):
    """An organization's inference endpoints (``ref`` is an endpoint's id or name)."""

    def _path(self, org_id: str | None, tail: str = "") -> str:
        return f"{API}/orgs/{_seg(self._org(org_id))}/endpoints{tail}"

    def create(
        self,
        name: str,
        region: str,
        model_uri: str,
        *,
        gpu_model: str,
        gpus: int | None = None,
        gpu_milli: int | None = None,
        backend: str | None = None,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        target_tokens_per_s: int | None = None,
        scale_to_zero_after_s: int | None = None,
        project_id: str | None = None,
        org_id: str | None = None,
    ) -> EndpointRead:
        """Deploy the model at ``model_uri`` (a directory in the region's model store);
        residency of the region and of the store is checked, replicas are placed at once."""
        body: dict[str, Any] = _without_none(
            {
                "name": name,
                "region": region,
                "model_uri": model_uri,
                "gpu_model": gpu_model,
                "gpus": gpus,
                "gpu_milli": gpu_milli,
                "backend": backend,
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
                "target_tokens_per_s": target_tokens_per_s,
                "scale_to_zero_after_s": scale_to_zero_after_s,
                "project_id": project_id,
            }
        )
        return self._t.call(
            "POST", self._path(org_id), EndpointRead, body=body, idempotency_key=True
        )

    def list(
        self, *, org_id: str | None = None, page_size: int | None = None
    ) -> PageIterator[EndpointRead]:
        return self._paginate(self._path(org_id), EndpointRead, page_size)

    def get(self, ref: str, *, org_id: str | None = None) -> EndpointRead:
        return self._t.call("GET", self._path(org_id, f"/{_seg(ref)}"), EndpointRead)

    def events(
        self, ref: str, *, org_id: str | None = None, page_size: int | None = None
    ) -> PageIterator[EndpointEventRead]:
        return self._paginate(
            self._path(org_id, f"/{_seg(ref)}/events"), EndpointEventRead, page_size
        )

    def scale(
        self,
        ref: str,
        min_replicas: int,
        max_replicas: int,
        replicas: int | None = None,
        *,
        org_id: str | None = None,
    ) -> EndpointRead:
        body = _without_none(
            {"min_replicas": min_replicas, "max_replicas": max_replicas, "replicas": replicas}
        )
        return self._t.call(
            "PUT", self._path(org_id, f"/{_seg(ref)}/scale"), EndpointRead, body=body
        )

    def add_version(
        self, ref: str, model_uri: str, traffic_percent: int = 0, *, org_id: str | None = None
    ) -> EndpointRead:
        """A new model version taking ``traffic_percent`` of the requests (a canary)."""
        body = {"model_uri": model_uri, "traffic_percent": traffic_percent}
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(ref)}/versions"),
            EndpointRead,
            body=body,
            idempotency_key=True,
        )

    def split(
        self, ref: str, percent: dict[int, int], *, org_id: str | None = None
    ) -> EndpointRead:
        """Traffic shares by version number (adding up to 100; a version at 0 retires)."""
        body = {"percent": {str(k): v for k, v in percent.items()}}
        return self._t.call(
            "PUT", self._path(org_id, f"/{_seg(ref)}/traffic"), EndpointRead, body=body
        )

    def decide(
        self, ref: str, number: int, decision: str, note: str = "", *, org_id: str | None = None
    ) -> EndpointRead:
        """Approve (``"approve"``) or reject (``"reject"``) a pending version (validators)."""
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(ref)}/versions/{number}/decision"),
            EndpointRead,
            body={"decision": decision, "note": note},
            idempotency_key=True,
        )

    def delete(self, ref: str, *, org_id: str | None = None) -> EndpointRead:
        return self._t.call("DELETE", self._path(org_id, f"/{_seg(ref)}"), EndpointRead)

    def governance(self, *, org_id: str | None = None) -> GovernanceRead:
        path = f"{API}/orgs/{_seg(self._org(org_id))}/model-governance"
        return self._t.call("GET", path, GovernanceRead)

    def set_governance(
        self, require_approval: bool, *, org_id: str | None = None
    ) -> GovernanceRead:
        path = f"{API}/orgs/{_seg(self._org(org_id))}/model-governance"
        return self._t.call(
            "PUT", path, GovernanceRead, body={"require_approval": require_approval}
        )

    def wait(
        self,
        ref: str,
        state: str = "ready",
        timeout: float = 600.0,
        *,
        interval: float = 1.0,
        org_id: str | None = None,
    ) -> EndpointRead:
        deadline = time.monotonic() + timeout
        while True:
            endpoint = self.get(ref, org_id=org_id)
            if endpoint.state == state:
                return endpoint
            if time.monotonic() >= deadline:
                raise EndpointWaitError(endpoint, state, timeout)
            time.sleep(interval)
