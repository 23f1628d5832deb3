"""Tenancies through the SDK: create, follow, resize, schedule and release GPU capacity; reach
a running one (VM power and console, a Kubernetes tenancy's kubeconfig); shapes, shape
suggestions and quotas.

Every tenancy call acts on an organization: pass ``org_id=``, or leave it out to use the
credential's current organization (an API key's own, a session's selected one)::

    with Client(url, api_key) as client:
        tenancy = client.tenancies.create("train-1", "slurm", "any", shape="medium")
        client.tenancies.wait(tenancy.id, "active", timeout=600)
        client.tenancies.release(tenancy.id)
        client.tenancies.wait(tenancy.id, "released")

A Kubernetes tenancy's kubeconfig is shown once; rotate it to get another::

    kubeconfig = client.tenancies.reveal_credential(tenancy.id)
    client.tenancies.rotate_credential(tenancy.id)  # the first one stops working
    kubeconfig = client.tenancies.reveal_credential(tenancy.id)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from control_plane.sdk.errors import SdkError
from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.resources import API, _OrgScoped, _Resource, _seg, _without_none
from control_plane.tenancies.drivers.base import PowerAction
from control_plane.tenancies.schemas import (
    ConsoleRead,
    CredentialRead,
    CredentialReveal,
    PowerRequest,
    PowerResult,
    QuotaRead,
    QuotaSet,
    ShapeCreate,
    ShapeRead,
    ShapeSuggestion,
    TenancyEventRead,
    TenancyRead,
    TenancySchedule,
    Workspace,
)

__all__ = [
    "FINAL_STATES",
    "Quotas",
    "Shapes",
    "Tenancies",
    "TenancyFailedError",
    "WaitTimeoutError",
]

FINAL_STATES = frozenset({"released", "failed"})
# The order a tenancy moves through; waiting for a state it has passed cannot succeed.
_ORDER = ("requested", "placing", "provisioning", "active", "releasing", "cleaning", "released")

_ShapeList = list[ShapeRead]
_QuotaList = list[QuotaRead]
_Power = Literal["start", "stop", "reboot"]
Progress = Callable[[TenancyRead, Sequence[TenancyEventRead]], None]


class TenancyFailedError(SdkError):
    """The tenancy can no longer reach the state waited for (it failed, or moved past it)."""

    def __init__(self, tenancy: TenancyRead, wanted: str) -> None:
        self.tenancy = tenancy
        why = f": {tenancy.failure_reason}" if tenancy.failure_reason else ""
        super().__init__(f"tenancy {tenancy.id} is {tenancy.state}, it will not be {wanted}{why}")


class WaitTimeoutError(SdkError):
    """The tenancy did not reach the state in time; :attr:`tenancy` is how it was last seen."""

    def __init__(self, tenancy: TenancyRead, wanted: str, timeout: float) -> None:
        self.tenancy = tenancy
        super().__init__(
            f"tenancy {tenancy.id} is still {tenancy.state} after {timeout:g} s "
            f"(waiting for {wanted})"
        )


class Tenancies(_OrgScoped):
    """An organization's tenancies, its quotas and the shape that fits a workload."""

    def _path(self, org_id: str | None, tail: str = "") -> str:
        return f"{API}/orgs/{_seg(self._org(org_id))}/tenancies{tail}"

    def create(
        self,
        name: str,
        kind: str,
        region: str = "any",
        *,
        shape: str | None = None,
        gpu_model: str | None = None,
        gpu_class: str | None = None,
        gpus_per_node: int | None = None,
        node_count: int | None = None,
        ends_at: datetime | None = None,
        idle_release_minutes: int | None = None,
        image: str | None = None,
        ssh_public_keys: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        project_id: str | None = None,
        workspace: Workspace | None = None,
        org_id: str | None = None,
    ) -> TenancyRead:
        """Ask for GPUs: a ``shape``, or a ``gpu_model`` (or a ``gpu_class``, a generation
        such as ``"hopper"``: any model of it with room) with ``gpus_per_node`` (and
        ``node_count``). ``region="any"`` takes the cheapest region the residency policy
        allows that has room. Residency, quota and placement are checked at once: a refusal
        is a :class:`~control_plane.sdk.ConflictError` (capacity, quota) or
        :class:`~control_plane.sdk.PermissionDeniedError` (residency) whose ``body`` says why.

        ``workspace=Workspace(idle_minutes=30)`` (Kubernetes only) also runs a Jupyter server
        on the GPUs that shuts itself down after that long without activity.
        """
        body: dict[str, Any] = _without_none(
            {
                "name": name,
                "kind": kind,
                "region": region,
                "shape": shape,
                "gpu_model": gpu_model,
                "gpu_class": gpu_class,
                "gpus_per_node": gpus_per_node,
                "node_count": node_count,
                "ends_at": ends_at,
                "idle_release_minutes": idle_release_minutes,
                "image": image,
                "project_id": project_id,
                "workspace": workspace,
            }
        )
        if ssh_public_keys:
            body["ssh_public_keys"] = list(ssh_public_keys)
        if labels:
            body["labels"] = dict(labels)
        return self._t.call(
            "POST", self._path(org_id), TenancyRead, body=body, idempotency_key=True
        )

    def list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        region: str | None = None,
        org_id: str | None = None,
        page_size: int | None = None,
    ) -> PageIterator[TenancyRead]:
        """Tenancies, newest first, optionally filtered."""
        filters = {"state": state, "kind": kind, "region": region}
        return self._paginate(self._path(org_id), TenancyRead, page_size, filters)

    def get(self, tenancy_id: str, *, org_id: str | None = None) -> TenancyRead:
        return self._t.call("GET", self._path(org_id, f"/{_seg(tenancy_id)}"), TenancyRead)

    def events(
        self, tenancy_id: str, *, org_id: str | None = None, page_size: int | None = None
    ) -> PageIterator[TenancyEventRead]:
        """The tenancy's timeline, oldest first: transitions, steps, warnings, errors."""
        path = self._path(org_id, f"/{_seg(tenancy_id)}/events")
        return self._paginate(path, TenancyEventRead, page_size)

    def resize(
        self,
        tenancy_id: str,
        gpus_per_node: int,
        node_count: int | None = None,
        *,
        gpu_model: str | None = None,
        gpu_milli: int | None = None,
        org_id: str | None = None,
    ) -> TenancyRead:
        """Change the GPUs of an active tenancy; ``pending_resize`` is true until applied.

        ``gpu_model`` moves it to another GPU model of its region, ``gpu_milli`` (1 to 1000
        thousandths) to a share of each GPU: right-sizing re-places the tenancy."""
        body = _without_none({"gpus_per_node": gpus_per_node, "node_count": node_count,
                              "gpu_model": gpu_model, "gpu_milli": gpu_milli})  # fmt: skip
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(tenancy_id)}/resize"),
            TenancyRead,
            body=body,
            idempotency_key=True,
        )

    def schedule(
        self, tenancy_id: str, idle_release_minutes: int | None, *, org_id: str | None = None
    ) -> TenancyRead:
        """Release the tenancy by itself after ``idle_release_minutes`` (5 to 10,080) without
        a workload; ``None`` turns that off."""
        body = TenancySchedule(idle_release_minutes=idle_release_minutes)
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(tenancy_id)}/schedule"),
            TenancyRead,
            body=body,
            idempotency_key=True,
        )

    def release(self, tenancy_id: str, *, org_id: str | None = None) -> TenancyRead:
        """Give the tenancy back (asking twice is harmless); it goes through releasing and
        cleaning to released."""
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(tenancy_id)}/release"),
            TenancyRead,
            idempotency_key=True,
        )

    # ------------------------------------------------ reaching a running tenancy

    def power(
        self, tenancy_id: str, action: PowerAction | _Power, *, org_id: str | None = None
    ) -> PowerResult:
        """Start, stop or reboot an active VM tenancy's machines; the step lands on its
        timeline. Another kind (or driver) without power control is a
        :class:`~control_plane.sdk.ConflictError` naming what it cannot do."""
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(tenancy_id)}/power"),
            PowerResult,
            body=PowerRequest(action=PowerAction(action)),
            idempotency_key=True,  # a retried reboot must not reboot twice
        )

    def start(self, tenancy_id: str, *, org_id: str | None = None) -> PowerResult:
        """Power the VM on (``power(tenancy_id, "start")``)."""
        return self.power(tenancy_id, PowerAction.START, org_id=org_id)

    def stop(self, tenancy_id: str, *, org_id: str | None = None) -> PowerResult:
        """Power the VM off; it keeps its GPUs (and is still billed) until released."""
        return self.power(tenancy_id, PowerAction.STOP, org_id=org_id)

    def reboot(self, tenancy_id: str, *, org_id: str | None = None) -> PowerResult:
        return self.power(tenancy_id, PowerAction.REBOOT, org_id=org_id)

    def console(self, tenancy_id: str, *, org_id: str | None = None) -> ConsoleRead:
        """A short-lived link to an active VM's console; it stops working at ``expires_at``.

        Sent without an ``Idempotency-Key``: the answer carries a signed token, which the
        server never keeps for replay (a keyed retry would only get a 409), so a lost answer
        is simply asked for again."""
        return self._t.call("POST", self._path(org_id, f"/{_seg(tenancy_id)}/console"), ConsoleRead)

    def credential(self, tenancy_id: str, *, org_id: str | None = None) -> CredentialRead:
        """The tenancy's access credential (a Kubernetes tenancy's kubeconfig) without its
        value: when it was issued and expires, whether it was shown, how often rotated.
        :class:`~control_plane.sdk.ConflictError` when it has none (yet)."""
        return self._t.call(
            "GET", self._path(org_id, f"/{_seg(tenancy_id)}/credential"), CredentialRead
        )

    def reveal_credential(self, tenancy_id: str, *, org_id: str | None = None) -> str:
        """The credential's text (the kubeconfig), shown ONCE: the server deletes its copy.

        Asking again is a :class:`~control_plane.sdk.ConflictError` telling you to rotate
        (:meth:`rotate_credential`), then reveal the new one. The call carries no
        ``Idempotency-Key`` and is not retried once sent: the server never keeps the answer
        for replay, so if it is lost, rotate."""
        revealed = self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(tenancy_id)}/credential/reveal"),
            CredentialReveal,
        )
        return revealed.value

    def rotate_credential(self, tenancy_id: str, *, org_id: str | None = None) -> CredentialRead:
        """Invalidate every earlier credential and issue a new one, to reveal once with
        :meth:`reveal_credential`."""
        return self._t.call(
            "POST",
            self._path(org_id, f"/{_seg(tenancy_id)}/credential/rotate"),
            CredentialRead,
            idempotency_key=True,
        )

    def wait(
        self,
        tenancy_id: str,
        state: str = "active",
        timeout: float = 600.0,
        *,
        interval: float = 1.0,
        org_id: str | None = None,
        on_progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> TenancyRead:
        """Poll until the tenancy is in ``state`` (and, for ``active``, no resize is pending).

        ``on_progress(tenancy, new_events)`` is called after each poll that saw something
        new. Raises :class:`TenancyFailedError` when the state can no longer be reached and
        :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        org = self._org(org_id)
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        last: tuple[str, bool] | None = None
        while True:
            tenancy = self.get(tenancy_id, org_id=org)
            if on_progress is not None:
                fresh = [e for e in self.events(tenancy_id, org_id=org) if e.id not in seen]
                seen.update(e.id for e in fresh)
                if fresh or last != (tenancy.state, tenancy.pending_resize):
                    on_progress(tenancy, fresh)
            last = (tenancy.state, tenancy.pending_resize)
            if tenancy.state == state and not (state == "active" and tenancy.pending_resize):
                return tenancy
            if _unreachable(tenancy.state, state):
                raise TenancyFailedError(tenancy, state)
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(tenancy, state, timeout)
            sleep(max(0.0, min(interval, deadline - time.monotonic())))

    def suggest_shape(
        self,
        gpu_memory_gib: int,
        gpu_count: int = 1,
        interconnect: str = "any",
        region: str = "any",
        *,
        org_id: str | None = None,
    ) -> ShapeSuggestion:
        """The cheapest shape, in a region the residency policy allows, that gives
        ``gpu_count`` GPUs with ``gpu_memory_gib`` GiB in total (``interconnect="nvlink"``:
        all on one NVLink node)."""
        params = {
            "gpu_memory_gib": gpu_memory_gib,
            "gpu_count": gpu_count,
            "interconnect": interconnect,
            "region": region,
        }
        return self._t.call(
            "GET",
            f"{API}/orgs/{_seg(self._org(org_id))}/shape-suggestion",
            ShapeSuggestion,
            params=params,
        )

    def quotas(self, org_id: str | None = None) -> _QuotaList:
        """The GPU quotas that bind the organization, with what it holds under each."""
        return Quotas(self._t).of_org(self._org(org_id))

    def shapes(self, region: str) -> _ShapeList:
        """Shapes offered in ``region``, cheapest first (same as ``client.shapes.list``)."""
        return Shapes(self._t).list(region)


class Shapes(_Resource):
    """Shapes per region: everyone reads them, operator-admins define them."""

    def list(self, region: str) -> _ShapeList:
        """Shapes offered in ``region``, cheapest first."""
        return self._t.call("GET", f"{API}/regions/{_seg(region)}/shapes", _ShapeList)

    def create(
        self,
        region: str,
        name: str,
        gpu_model: str,
        gpus_per_node: int,
        hourly_price: Decimal | str,
        *,
        node_count: int = 1,
        gpu_milli: int = 1000,
        interconnect: Literal["nvlink", "pcie"] = "pcie",
        description: str = "",
    ) -> ShapeRead:
        """Offer a shape in ``region`` at ``hourly_price`` (the region's currency) per hour
        of the whole shape (operator-admins)."""
        shape = ShapeCreate(
            name=name, gpu_model=gpu_model, gpus_per_node=gpus_per_node,
            hourly_price=Decimal(hourly_price), node_count=node_count, gpu_milli=gpu_milli,
            interconnect=interconnect, description=description,
        )  # fmt: skip
        return self._t.call(
            "POST",
            f"{API}/regions/{_seg(region)}/shapes",
            ShapeRead,
            body=shape,
            idempotency_key=True,
        )

    def delete(self, region: str, name: str) -> None:
        """Stop offering a shape (tenancies made from it keep their size)."""
        self._t.call_no_content("DELETE", f"{API}/regions/{_seg(region)}/shapes/{_seg(name)}")


class Quotas(_Resource):
    """GPU quotas: an organization's (tenants), every rule and setting one (operators)."""

    def of_org(self, org_id: str) -> _QuotaList:
        """The rules that bind ``org_id``, with the GPUs it holds under each."""
        return self._t.call("GET", f"{API}/orgs/{_seg(org_id)}/quotas", _QuotaList)

    def rules(self) -> _QuotaList:
        """Every rule: defaults (org ``*``) and per-organization overrides (operators)."""
        return self._t.call("GET", f"{API}/quotas", _QuotaList)

    def set(
        self,
        max_gpus: int,
        *,
        org_id: str = "*",
        region: str = "*",
        gpu_model: str = "*",
    ) -> QuotaRead:
        """Set a default (``org_id="*"``) or per-organization GPU quota (operator-admins);
        ``*`` for region or GPU model matches any."""
        rule = QuotaSet(max_gpus=max_gpus, org_id=org_id, region=region, gpu_model=gpu_model)
        return self._t.call("PUT", f"{API}/quotas", QuotaRead, body=rule)


def _unreachable(current: str, wanted: str) -> bool:
    """Whether a tenancy in ``current`` can never get to ``wanted``."""
    if current == "failed":
        return True
    if current not in _ORDER or wanted not in _ORDER:
        return current in FINAL_STATES
    return _ORDER.index(current) > _ORDER.index(wanted)
