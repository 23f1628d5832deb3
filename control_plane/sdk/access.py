"""Operator access approval through the SDK.

Operators (signed in with ``client.login``) ask for access, follow their own requests,
break the glass, and under a grant read support data or open a tenant VM's console. Tenants
approve, deny, revoke and review, and auditors read the access report, per organization:
``client.access.org(id)``.
"""

from __future__ import annotations

from control_plane.sdk._http import Transport
from control_plane.sdk.errors import error_from_response
from control_plane.sdk.pagination import PageIterator
from control_plane.sdk.resources import API, _Resource, _seg, _without_none
from control_plane.sovereignty.access.schemas import (
    AccessNotificationRead,
    AccessReport,
    AccessRequestDetail,
    AccessRequestRead,
    SupportSnapshot,
)
from control_plane.tenancies.schemas import ConsoleRead, OperatorConsoleRequest

__all__ = ["Access", "OrgAccess"]


class Access(_Resource):
    """The operator side; :meth:`org` gives an organization's side."""

    def request(
        self,
        org_id: str,
        resource_type: str,
        reason_code: str,
        justification: str,
        duration_minutes: int,
        resource_id: str | None = None,
    ) -> AccessRequestRead:
        """Ask ``org_id`` (an id or slug) for access; it stays pending until they decide."""
        body = _body(org_id, resource_type, reason_code, justification, duration_minutes)
        body.update(_without_none({"resource_id": resource_id}))
        return self._t.call(
            "POST", f"{API}/access-requests", AccessRequestRead, body=body, idempotency_key=True
        )

    def break_glass(
        self,
        org_id: str,
        resource_type: str,
        reason_code: str,
        justification: str,
        duration_minutes: int,
        resource_id: str | None = None,
    ) -> AccessRequestRead:
        """Emergency access (operator-admins): active at once, the tenant is told at once."""
        body = _body(org_id, resource_type, reason_code, justification, duration_minutes)
        body.update(_without_none({"resource_id": resource_id}))
        return self._t.call(
            "POST", f"{API}/break-glass", AccessRequestRead, body=body, idempotency_key=True
        )

    def list(
        self, *, state: str | None = None, page_size: int | None = None
    ) -> PageIterator[AccessRequestRead]:
        """Your own requests, newest first."""
        return self._paginate(
            f"{API}/access-requests", AccessRequestRead, page_size, {"state": state}
        )

    def get(self, request_id: str) -> AccessRequestDetail:
        return self._t.call("GET", f"{API}/access-requests/{_seg(request_id)}", AccessRequestDetail)

    def withdraw(self, request_id: str) -> AccessRequestRead:
        return self._t.call(
            "POST",
            f"{API}/access-requests/{_seg(request_id)}/withdraw",
            AccessRequestRead,
            idempotency_key=True,
        )

    def support_data(self, org_id: str, purpose: str | None = None) -> SupportSnapshot:
        """The organization's support snapshot; the use is recorded in its ledger."""
        return self._t.call(
            "GET",
            f"{API}/operator/orgs/{_seg(org_id)}/support-data",
            SupportSnapshot,
            params={"purpose": purpose},
        )

    def console(self, org_id: str, tenancy_id: str, purpose: str) -> ConsoleRead:
        """A console link to a tenant's VM, only under an approved (or break-glass) grant
        for that tenancy; without one a :class:`~control_plane.sdk.PermissionDeniedError`.
        ``purpose`` (5 to 200 characters) goes to the organization's ledger, refusals too."""
        return self._t.call(
            "POST",
            f"{API}/operator/orgs/{_seg(org_id)}/tenancies/{_seg(tenancy_id)}/console",
            ConsoleRead,
            body=OperatorConsoleRequest(purpose=purpose),
        )

    def org(self, org_id: str) -> OrgAccess:
        """One organization's requests, decisions, notices and report (tenant side)."""
        return OrgAccess(self._t, org_id)


class OrgAccess(_Resource):
    def __init__(self, transport: Transport, org_id: str) -> None:
        super().__init__(transport)
        self.org_id = org_id
        self._base = f"{API}/orgs/{_seg(org_id)}"

    def list(
        self,
        *,
        state: str | None = None,
        needs_review: bool = False,
        page_size: int | None = None,
    ) -> PageIterator[AccessRequestRead]:
        params = {"state": state, "needs_review": "true" if needs_review else None}
        return self._paginate(f"{self._base}/access-requests", AccessRequestRead, page_size, params)

    def get(self, request_id: str) -> AccessRequestDetail:
        return self._t.call("GET", self._request(request_id), AccessRequestDetail)

    def approve(self, request_id: str) -> AccessRequestRead:
        return self._decide(request_id, "approve")

    def deny(self, request_id: str, reason: str) -> AccessRequestRead:
        return self._decide(request_id, "deny", {"reason": reason})

    def revoke(self, request_id: str) -> AccessRequestRead:
        return self._decide(request_id, "revoke")

    def review(self, request_id: str, verdict: str, comment: str = "") -> AccessRequestRead:
        """Accept or dispute a break-glass access afterwards."""
        return self._decide(request_id, "review", {"verdict": verdict, "comment": comment})

    def report(self) -> AccessReport:
        return self._t.call("GET", f"{self._base}/access-report", AccessReport)

    def report_csv(self) -> str:
        response = self._t.send("GET", f"{self._base}/access-report", params={"format": "csv"})
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.text

    def notifications(
        self, *, unacknowledged: bool = False, page_size: int | None = None
    ) -> PageIterator[AccessNotificationRead]:
        params = {"unacknowledged": "true" if unacknowledged else None}
        return self._paginate(
            f"{self._base}/access-notifications", AccessNotificationRead, page_size, params
        )

    def acknowledge(self, notification_id: str) -> AccessNotificationRead:
        return self._t.call(
            "POST",
            f"{self._base}/access-notifications/{_seg(notification_id)}/acknowledge",
            AccessNotificationRead,
            idempotency_key=True,
        )

    def _request(self, request_id: str) -> str:
        return f"{self._base}/access-requests/{_seg(request_id)}"

    def _decide(
        self, request_id: str, verb: str, body: dict[str, str] | None = None
    ) -> AccessRequestRead:
        return self._t.call(
            "POST",
            f"{self._request(request_id)}/{verb}",
            AccessRequestRead,
            body=body,
            idempotency_key=True,
        )


def _body(
    org_id: str, resource_type: str, reason_code: str, justification: str, minutes: int
) -> dict[str, object]:
    return {
        "org_id": org_id,
        "resource_type": resource_type,
        "reason_code": reason_code,
        "justification": justification,
        "duration_minutes": minutes,
    }
