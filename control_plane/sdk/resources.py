"""One class per API resource; each method is one logical call (retried safely underneath)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from control_plane.http.pagination import Page
from control_plane.sdk._http import Transport
from control_plane.sdk.errors import SdkError, error_from_response
from control_plane.sdk.models import (
    ApiKeyCreated,
    ApiKeyRead,
    GpuModelRead,
    InventorySummary,
    MemberRead,
    MeRead,
    NodeEventRead,
    NodeImportResult,
    NodeRead,
    OrgRead,
    ProjectRead,
    RegionRead,
)
from control_plane.sdk.pagination import PageIterator

T = TypeVar("T")
API = "/api/v1"


def _seg(value: str) -> str:
    """A path segment, escaped so an id can never change the path."""
    return quote(value, safe="")


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def _paginate(
        self,
        path: str,
        item: type[T],
        page_size: int | None,
        params: Mapping[str, Any] | None = None,
    ) -> PageIterator[T]:
        # A generic parametrised with a runtime type: mypy cannot express it statically.
        page_type: Any = Page[item]  # type: ignore[valid-type]

        def fetch(cursor: str | None) -> Page[T]:
            query = {**(params or {}), "limit": page_size, "cursor": cursor}
            page: Page[T] = self._t.call("GET", path, page_type, params=query)
            return page

        return PageIterator(fetch)


class _OrgScoped(_Resource):
    """Resources of one organization: ``org_id=``, or the credential's current one."""

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


class Orgs(_Resource):
    """Organizations the caller belongs to."""

    def list(self, *, page_size: int | None = None) -> PageIterator[OrgRead]:
        return self._paginate(f"{API}/orgs", OrgRead, page_size)

    def get(self, org_id: str) -> OrgRead:
        return self._t.call("GET", f"{API}/orgs/{_seg(org_id)}", OrgRead)

    def create(self, slug: str, name: str) -> OrgRead:
        """Create an organization; the caller becomes its owner."""
        body = {"slug": slug, "name": name}
        return self._t.call("POST", f"{API}/orgs", OrgRead, body=body, idempotency_key=True)

    def update(self, org_id: str, *, name: str | None = None) -> OrgRead:
        body = _without_none({"name": name})
        return self._t.call("PATCH", f"{API}/orgs/{_seg(org_id)}", OrgRead, body=body)

    def delete(self, org_id: str, *, confirm: str) -> None:
        """Delete an organization (owners, signed in): irreversible, its keys are destroyed.

        ``confirm`` repeats the organization's slug.
        """
        response = self._t.send("DELETE", f"{API}/orgs/{_seg(org_id)}", params={"confirm": confirm})
        if response.status_code >= 400:
            raise error_from_response(response)

    def members(self, org_id: str) -> Members:
        """The members of one organization."""
        return Members(self._t, org_id)


class Members(_Resource):
    def __init__(self, transport: Transport, org_id: str) -> None:
        super().__init__(transport)
        self.org_id = org_id
        self._path = f"{API}/orgs/{_seg(org_id)}/members"

    def list(self, *, page_size: int | None = None) -> PageIterator[MemberRead]:
        return self._paginate(self._path, MemberRead, page_size)

    def add(self, email: str, role: str, *, name: str | None = None) -> MemberRead:
        """Add a user (created if the email is new) with ``role``."""
        body = _without_none({"email": email, "role": role, "name": name})
        return self._t.call("POST", self._path, MemberRead, body=body, idempotency_key=True)

    def update(self, user_id: str, *, role: str) -> MemberRead:
        return self._t.call(
            "PATCH", f"{self._path}/{_seg(user_id)}", MemberRead, body={"role": role}
        )

    def remove(self, user_id: str) -> None:
        self._t.call_no_content("DELETE", f"{self._path}/{_seg(user_id)}")


class Projects(_Resource):
    def list(
        self, org_id: str | None = None, *, page_size: int | None = None
    ) -> PageIterator[ProjectRead]:
        """Projects of ``org_id`` (default: the caller's current organization)."""
        return self._paginate(f"{API}/projects", ProjectRead, page_size, {"org_id": org_id})

    def create(
        self, slug: str, name: str, org_id: str | None = None, description: str = ""
    ) -> ProjectRead:
        body = _without_none(
            {"slug": slug, "name": name, "org_id": org_id, "description": description}
        )
        return self._t.call("POST", f"{API}/projects", ProjectRead, body=body, idempotency_key=True)

    def get(self, project_id: str) -> ProjectRead:
        return self._t.call("GET", f"{API}/projects/{_seg(project_id)}", ProjectRead)

    def update(
        self, project_id: str, *, name: str | None = None, description: str | None = None
    ) -> ProjectRead:
        body = _without_none({"name": name, "description": description})
        return self._t.call("PATCH", f"{API}/projects/{_seg(project_id)}", ProjectRead, body=body)

    def delete(self, project_id: str) -> None:
        self._t.call_no_content("DELETE", f"{API}/projects/{_seg(project_id)}")


class ApiKeys(_Resource):
    def list(self, project_id: str, *, page_size: int | None = None) -> PageIterator[ApiKeyRead]:
        return self._paginate(f"{API}/projects/{_seg(project_id)}/api-keys", ApiKeyRead, page_size)

    def create(
        self,
        project_id: str,
        name: str,
        scopes: Sequence[str] | None = None,
        role: str | None = None,
        expires_in_days: int | None = 90,
        *,
        requests_per_second: float | None = None,
        tokens_per_minute: int | None = None,
    ) -> ApiKeyCreated:
        """Create a key; ``.secret`` of the answer is the only time the secret is shown.

        ``expires_in_days=None`` asks for a key that never expires;
        ``requests_per_second``/``tokens_per_minute`` are its inference gateway limits
        (unset: the operator's defaults).
        """
        body: dict[str, Any] = _without_none(
            {
                "name": name,
                "scopes": None if scopes is None else [*scopes],
                "role": role,
                "requests_per_second": requests_per_second,
                "tokens_per_minute": tokens_per_minute,
            }
        )
        body["expires_in_days"] = expires_in_days
        return self._t.call(
            "POST",
            f"{API}/projects/{_seg(project_id)}/api-keys",
            ApiKeyCreated,
            body=body,
            idempotency_key=True,
        )

    def get(self, key_id: str) -> ApiKeyRead:
        return self._t.call("GET", f"{API}/api-keys/{_seg(key_id)}", ApiKeyRead)

    def revoke(self, key_id: str) -> ApiKeyRead:
        return self._t.call(
            "POST", f"{API}/api-keys/{_seg(key_id)}/revoke", ApiKeyRead, idempotency_key=True
        )


class Regions(_Resource):
    def list(self, *, page_size: int | None = None) -> PageIterator[RegionRead]:
        return self._paginate(f"{API}/regions", RegionRead, page_size)

    def get(self, code: str) -> RegionRead:
        return self._t.call("GET", f"{API}/regions/{_seg(code)}", RegionRead)


class GpuModels(_Resource):
    def list(self, *, page_size: int | None = None) -> PageIterator[GpuModelRead]:
        return self._paginate(f"{API}/gpu-models", GpuModelRead, page_size)


class Nodes(_Resource):
    """The fleet (provider operators only: sign in with :meth:`Client.login`)."""

    def list(
        self,
        *,
        region: str | None = None,
        state: str | None = None,
        gpu_model: str | None = None,
        hostname: str | None = None,
        site: str | None = None,
        page_size: int | None = None,
    ) -> PageIterator[NodeRead]:
        """Nodes by hostname; ``hostname`` filters by prefix."""
        filters = {
            "region": region,
            "state": state,
            "gpu_model": gpu_model,
            "hostname": hostname,
            "site": site,
        }
        return self._paginate(f"{API}/nodes", NodeRead, page_size, filters)

    def get(self, node_id: str) -> NodeRead:
        return self._t.call("GET", f"{API}/nodes/{_seg(node_id)}", NodeRead)

    def events(self, node_id: str, *, page_size: int | None = None) -> PageIterator[NodeEventRead]:
        return self._paginate(f"{API}/nodes/{_seg(node_id)}/events", NodeEventRead, page_size)

    def transition(self, node_id: str, to: str, reason: str) -> NodeRead:
        """Move a node to another lifecycle state (drain, maintenance, available, retired)."""
        return self._t.call(
            "POST",
            f"{API}/nodes/{_seg(node_id)}/transitions",
            NodeRead,
            body={"to": to, "reason": reason},
            idempotency_key=True,
        )

    def import_file(
        self, format: Literal["csv", "yaml"], content: str, dry_run: bool = False
    ) -> NodeImportResult:
        """Enrol nodes from a CSV or YAML document: all rows or none."""
        return self._t.call(
            "POST",
            f"{API}/nodes/import",
            NodeImportResult,
            body={"format": format, "content": content, "dry_run": dry_run},
            idempotency_key=True,
        )

    def summary(self) -> InventorySummary:
        return self._t.call("GET", f"{API}/nodes/summary", InventorySummary)
