"""Residency policies through the SDK: templates, versions, previews, the signed report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from control_plane.audit.signing import verify_signature
from control_plane.sdk.errors import error_from_response
from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.resources import API, _Resource, _seg, _without_none
from control_plane.sovereignty.residency.schemas import (
    EvaluateRead,
    PolicyPreview,
    PolicyRead,
    TemplateRead,
)

__all__ = ["Residency", "SignedReport"]

ReportFormat = Literal["json", "csv", "html"]


@dataclass(frozen=True)
class SignedReport:
    """A residency report as downloaded: its exact bytes and their detached signature."""

    content: bytes
    media_type: str
    key_id: str
    signature: str

    def verify(self, public_keys: dict[str, str]) -> bool:
        """True when a trusted key (key id -> base64 public key, e.g. from
        ``client.audit.keys()``) signed exactly these bytes."""
        key = public_keys.get(self.key_id)
        return key is not None and verify_signature(key, self.content, self.signature)


class Residency(_Resource):
    """An organization's residency policy (read: auditors too; change: owners and admins)."""

    def templates(self) -> list[TemplateRead]:
        return self._t.call("GET", f"{API}/residency-templates", list[TemplateRead])

    def get(self, org_id: str) -> PolicyRead:
        """The current version (version 0 is the unrestricted default nobody stored)."""
        return self._t.call("GET", self._path(org_id), PolicyRead)

    def versions(self, org_id: str, *, page_size: int | None = None) -> PageIterator[PolicyRead]:
        """Stored versions, newest first."""
        return self._paginate(self._path(org_id, "/versions"), PolicyRead, page_size)

    def set(
        self, org_id: str, *, template: str | None = None, force: bool = False, **clauses: Any
    ) -> PolicyRead:
        """Store a new version from ``template`` and/or clauses (``allowed_regions=[...]``).

        Raises ConflictError (409) listing the resources that would fall outside, unless
        ``force`` (they are then flagged in the report). Saving an identical policy again
        stores nothing and answers the current version.
        """
        body = {**_without_none({"template": template}), **clauses, "force": force}
        return self._t.call("PUT", self._path(org_id), PolicyRead, body=body)

    def preview(self, org_id: str, *, template: str | None = None, **clauses: Any) -> PolicyPreview:
        """What saving the change would do to existing resources; writes nothing."""
        body = {**_without_none({"template": template}), **clauses}
        return self._t.call("POST", self._path(org_id, "/preview"), PolicyPreview, body=body)

    def evaluate(self, org_id: str, region_code: str) -> EvaluateRead:
        """Would a placement in ``region_code`` be allowed now, and by which clause?"""
        body = {"region_code": region_code}
        return self._t.call("POST", self._path(org_id, "/evaluate"), EvaluateRead, body=body)

    def report(self, org_id: str, *, format: ReportFormat = "json") -> SignedReport:
        """The signed residency report in ``format`` (json, csv or html)."""
        response = self._t.send(
            "GET", f"{API}/orgs/{_seg(org_id)}/residency-report", params={"format": format}
        )
        if response.status_code >= 400:
            raise error_from_response(response)
        return SignedReport(
            content=response.content,
            media_type=response.headers.get("content-type", ""),
            key_id=response.headers.get("x-report-key-id", ""),
            signature=response.headers.get("x-report-signature", ""),
        )

    @staticmethod
    def _path(org_id: str, tail: str = "") -> str:
        return f"{API}/orgs/{_seg(org_id)}/residency-policy{tail}"
