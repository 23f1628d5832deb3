"""Request and response bodies of the operator access approval API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from control_plane.http.fields import Reason
from control_plane.sovereignty.access.lifecycle import (
    MAX_BREAK_GLASS_DURATION,
    MAX_DURATION,
    MIN_DURATION,
    AccessState,
    ReasonCode,
    RequestKind,
    ResourceType,
    ReviewVerdict,
    minutes,
)

_PRINTABLE = r"^[^\x00-\x1f\x7f\ud800-\udfff]*$"
_PRINTABLE_MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]*$"

OrgRef = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
ResourceRef = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/-]+$")]
# Recorded verbatim in the tenant's audit ledger with every use, hence the ledger's limit.
Justification = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f\ud800-\udfff]+$")
]
Minutes = Annotated[
    int, Meta(ge=minutes(MIN_DURATION), le=minutes(MAX_DURATION), description="15 min to 72 h")
]
BreakGlassMinutes = Annotated[
    int,
    Meta(
        ge=minutes(MIN_DURATION), le=minutes(MAX_BREAK_GLASS_DURATION), description="15 min to 4 h"
    ),
]
Comment = Annotated[str, Meta(max_length=2000, pattern=_PRINTABLE_MULTILINE)]
Purpose = Annotated[str, Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    pass


class AccessRequestCreate(_In):
    """An operator asks a tenant for access to one resource, for one reason, for a while."""

    org_id: OrgRef
    resource_type: ResourceType
    reason_code: ReasonCode
    justification: Justification
    duration_minutes: Minutes
    # For support_data the organization itself is the resource: leave it out.
    resource_id: ResourceRef | None = None


class BreakGlassCreate(_In):
    """Emergency access: active at once, for at most four hours, reviewed afterwards."""

    org_id: OrgRef
    resource_type: ResourceType
    reason_code: ReasonCode
    justification: Justification
    duration_minutes: BreakGlassMinutes
    resource_id: ResourceRef | None = None


class AccessDeny(_In):
    reason: Reason


class AccessReview(_In):
    verdict: ReviewVerdict
    comment: Comment = ""


class AccessRequestRead(msgspec.Struct):
    id: str
    org_id: str
    kind: RequestKind
    operator_id: str
    operator_email: str
    operator_jurisdiction: str | None
    resource_type: ResourceType
    resource_id: str
    reason_code: ReasonCode
    justification: str
    duration_minutes: int
    state: AccessState
    active: bool
    requested_at: datetime
    decide_by: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str | None
    approved_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    policy_rule: str
    review_required: bool
    review_verdict: ReviewVerdict | None
    review_comment: str | None
    reviewed_at: datetime | None
    reviewed_by: str | None


class AccessUseRead(msgspec.Struct):
    id: str
    request_id: str
    operator_id: str
    resource_type: ResourceType
    resource_id: str
    purpose: str
    at: datetime
    ledger_chain: str
    ledger_seq: int


class AccessRequestDetail(msgspec.Struct):
    request: AccessRequestRead
    uses: list[AccessUseRead]


class AccessNotificationRead(msgspec.Struct):
    id: str
    org_id: str
    request_id: str
    kind: str
    message: str
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AccessReport(msgspec.Struct):
    """Access transparency for one organization: every request, decision, window and use."""

    org_id: str
    generated_at: datetime
    requests: list[AccessRequestDetail]


class SupportProject(msgspec.Struct):
    id: str
    slug: str
    name: str
    created_at: datetime


class SupportSnapshot(msgspec.Struct):
    """What an operator with a support_data grant sees of an organization (no secrets)."""

    org_id: str
    slug: str
    name: str
    created_at: datetime
    member_count: int
    projects: list[SupportProject]
    grant_request_id: str
    grant_expires_at: datetime
