"""Pools through the SDK: operators set nodes aside and lend them to organizations by
weekly windows; tenants read the windows granted to them::

    with Client(url, session=...) as operator:
        pool = operator.pools.create("ca-qc-1", "gpu-shared", "America/Toronto")
        operator.pools.set_nodes("ca-qc-1", pool.id, node_ids)
        operator.pools.add_window("ca-qc-1", pool.id, "ai-lab", ["mon", "tue"], "08:00", "20:00")

    with Client(url, api_key) as client:
        for pool in client.pools.mine():
            print(pool.name, [o.start for o in pool.openings])
"""

from __future__ import annotations

from collections.abc import Sequence

from control_plane.identity.schemas import MeRead
from control_plane.pools.schemas import (
    Day,
    Opening,
    PoolCreate,
    PoolNodesSet,
    PoolRead,
    TenantPool,
    WindowCreate,
    WindowRead,
)
from control_plane.sdk.errors import SdkError
from control_plane.sdk.resources import API, _Resource, _seg

__all__ = ["Pools"]

_PoolList = list[PoolRead]
_OpeningList = list[Opening]
_TenantPoolList = list[TenantPool]


class Pools(_Resource):
    """Pools of a region (operators) and the pools lent to an organization (tenants)."""

    _current_org: str | None = None

    def _org(self, org_id: str | None) -> str:
        """``org_id``, or the credential's current organization (asked once)."""
        if org_id is not None:
            return org_id
        if self._current_org is None:
            me = self._t.call("GET", f"{API}/me", MeRead)
            if me.current_org_id is None:
                raise SdkError("this credential has no current organization; pass org_id=")
            self._current_org = me.current_org_id
        return self._current_org

    def _pools(self, region: str, tail: str = "") -> str:
        return f"{API}/regions/{_seg(region)}/pools{tail}"

    def list(self, region: str) -> _PoolList:
        return self._t.call("GET", self._pools(region), _PoolList)

    def get(self, region: str, pool_id: str) -> PoolRead:
        return self._t.call("GET", self._pools(region, f"/{_seg(pool_id)}"), PoolRead)

    def create(
        self,
        region: str,
        name: str,
        timezone: str,
        *,
        drain_minutes: int = 30,
        description: str = "",
    ) -> PoolRead:
        """A pool with no nodes yet; ``timezone`` is the IANA zone its windows are in."""
        body = PoolCreate(name=name, timezone=timezone, drain_minutes=drain_minutes,
                          description=description)  # fmt: skip
        return self._t.call("POST", self._pools(region), PoolRead, body=body, idempotency_key=True)

    def delete(self, region: str, pool_id: str) -> None:
        self._t.call_no_content("DELETE", self._pools(region, f"/{_seg(pool_id)}"))

    def set_nodes(self, region: str, pool_id: str, node_ids: Sequence[str]) -> PoolRead:
        """Make the pool's members exactly ``node_ids``."""
        path = self._pools(region, f"/{_seg(pool_id)}/nodes")
        return self._t.call("PUT", path, PoolRead, body=PoolNodesSet(node_ids=list(node_ids)))

    def add_window(
        self,
        region: str,
        pool_id: str,
        org: str,
        days: Sequence[Day],
        start: str,
        end: str,
        *,
        project_id: str | None = None,
    ) -> WindowRead:
        """Lend the pool to ``org`` (id or slug) on ``days`` from ``start`` to ``end`` (local
        ``HH:MM``; an end at or before the start is the next day)."""
        body = WindowCreate(org_id=org, days=list(days), start=start, end=end,
                            project_id=project_id)  # fmt: skip
        path = self._pools(region, f"/{_seg(pool_id)}/windows")
        return self._t.call("POST", path, WindowRead, body=body, idempotency_key=True)

    def remove_window(self, region: str, pool_id: str, window_id: str) -> None:
        path = self._pools(region, f"/{_seg(pool_id)}/windows/{_seg(window_id)}")
        self._t.call_no_content("DELETE", path)

    def schedule(self, region: str, pool_id: str, days: int = 7) -> _OpeningList:
        """The concrete openings of the coming ``days`` days."""
        path = self._pools(region, f"/{_seg(pool_id)}/schedule")
        return self._t.call("GET", path, _OpeningList, params={"days": days})

    def mine(self, org_id: str | None = None) -> _TenantPoolList:
        """The pools lending GPUs to the organization, with its openings this week."""
        path = f"{API}/orgs/{_seg(self._org(org_id))}/pools"
        return self._t.call("GET", path, _TenantPoolList)
