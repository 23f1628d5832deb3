"""GPU telemetry through the SDK: an organization's utilization (tenants); the fleet's
utilization, stranded capacity and node agent credentials (operators)::

    with Client(url, api_key) as client:
        report = client.telemetry.utilization(tenancy="ten_...")

    with Client(url) as operator:
        operator.login(email, password)
        issued = operator.telemetry.agent_credentials.issue("node_...")
        # issued.credential is shown once: write it to the agent's credential file (0600)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from control_plane.sdk._http import Transport
from control_plane.sdk.resources import API, _OrgScoped, _Resource, _seg
from control_plane.telemetry.schemas import (
    CredentialCreated,
    CredentialRead,
    FleetReport,
    UtilizationReport,
)

__all__ = ["AgentCredentials", "RegionStranded", "ShapeFit", "Telemetry"]


class ShapeFit(msgspec.Struct):
    """How one offered shape fits the free capacity of its region."""

    shape: str
    gpu_model: str
    gpus_per_node: int
    gpu_milli: int
    fits: int  # how many more of the shape the free capacity holds
    usable_gpus: float  # free GPUs of its model it could use
    stranded_gpus: float  # free GPUs of its model it cannot


class RegionStranded(msgspec.Struct):
    """Free GPUs of a region (on schedulable nodes) and, per shape, what it cannot use."""

    region: str
    free_gpus: float
    shapes: list[ShapeFit]

    @property
    def worst_stranded_gpus(self) -> float:
        return max((s.stranded_gpus for s in self.shapes), default=0.0)


_Stranded = list[RegionStranded]
_Credentials = list[CredentialRead]


def _window(since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }


class Telemetry(_OrgScoped):
    """Hourly GPU utilization, memory and energy; fleet views for operators."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self.agent_credentials = AgentCredentials(transport)

    def utilization(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        tenancy: str | None = None,
        org_id: str | None = None,
    ) -> UtilizationReport:
        """The organization's GPUs hour by hour (default: the last 7 days; at most 31),
        optionally one tenancy's only."""
        params = {**_window(since, until), "tenancy": tenancy}
        path = f"{API}/orgs/{_seg(self._org(org_id))}/utilization"
        return self._t.call("GET", path, UtilizationReport, params=params)

    def fleet(self, *, since: datetime | None = None, until: datetime | None = None) -> FleetReport:
        """Utilization, allocation, energy and CO2e per region and hour (operators)."""
        return self._t.call(
            "GET", f"{API}/fleet/utilization", FleetReport, params=_window(since, until)
        )

    def stranded(self) -> _Stranded:
        """Per region, the free GPU share each offered shape cannot use (operators)."""
        return self._t.call("GET", f"{API}/fleet/stranded", _Stranded)


class AgentCredentials(_Resource):
    """The credentials node agents send telemetry with (operators)."""

    def _path(self, node_id: str, tail: str = "") -> str:
        return f"{API}/nodes/{_seg(node_id)}/agent-credentials{tail}"

    def issue(self, node_id: str) -> CredentialCreated:
        """A new credential for the node's agent; ``credential`` is in this answer only.

        Sent without an ``Idempotency-Key`` on purpose: a stored answer would keep the
        secret in the server's replay table. A lost answer leaves an unused credential to
        revoke, nothing worse.
        """
        return self._t.call("POST", self._path(node_id), CredentialCreated)

    def list(self, node_id: str) -> _Credentials:
        return self._t.call("GET", self._path(node_id), _Credentials)

    def revoke(self, node_id: str, credential_id: str) -> CredentialRead:
        """Revoke a credential: the agent's next batch is refused (within seconds)."""
        return self._t.call("DELETE", self._path(node_id, f"/{_seg(credential_id)}"),
                            CredentialRead)  # fmt: skip
