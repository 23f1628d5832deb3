"""Request and response bodies of the residency API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from control_plane.http.fields import Code, CountryCode

GroupCode = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Z0-9-]+$")]
TemplateSlug = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")]
Classification = Annotated[
    str, Meta(min_length=1, max_length=100, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f\ud800-\udfff]+$")
]
PolicyName = Annotated[
    str, Meta(min_length=1, max_length=100, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f\ud800-\udfff]+$")
]
_MAX_ITEMS = 300


class _In(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PolicyFields(msgspec.Struct):
    """The clauses of a policy (see docs/residency.md for what each means)."""

    name: str
    classification: str
    unrestricted: bool
    allowed_jurisdictions: list[str]
    allowed_regions: list[str]
    allowed_groups: list[str]
    keys_in_region: bool
    cross_border_export: bool
    operator_jurisdictions: list[str]


class TemplateRead(msgspec.Struct):
    slug: str
    description: str
    policy: PolicyFields


class ResourceRead(msgspec.Struct):
    kind: str
    id: str
    region_code: str
    description: str


class PolicyRead(msgspec.Struct):
    """One stored version (version 0: the default nobody stored)."""

    org_id: str
    version: int
    policy: PolicyFields
    template: str | None
    changed_by_kind: str | None
    changed_by_id: str | None
    created_at: datetime | None
    forced: bool
    flagged: list[ResourceRead]


class PolicyChange(_In):
    """A new version: a template, explicit clauses, or a template with some clauses changed.

    Without ``template`` the change starts from the current policy; absent clauses keep
    their value. ``force`` saves it even when existing resources fall outside (they are
    then flagged in the residency report).
    """

    template: TemplateSlug | None = None
    name: PolicyName | msgspec.UnsetType = msgspec.UNSET
    classification: Classification | msgspec.UnsetType = msgspec.UNSET
    unrestricted: bool | msgspec.UnsetType = msgspec.UNSET
    allowed_jurisdictions: Annotated[list[CountryCode], Meta(max_length=_MAX_ITEMS)] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    allowed_regions: Annotated[list[Code], Meta(max_length=_MAX_ITEMS)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    allowed_groups: Annotated[list[GroupCode], Meta(max_length=_MAX_ITEMS)] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    keys_in_region: bool | msgspec.UnsetType = msgspec.UNSET
    cross_border_export: bool | msgspec.UnsetType = msgspec.UNSET
    operator_jurisdictions: Annotated[list[CountryCode], Meta(max_length=_MAX_ITEMS)] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    force: bool = False


class DecisionRead(msgspec.Struct):
    allowed: bool
    rule: str
    explanation: str


class ResourceAssessment(msgspec.Struct):
    """A resource, where it lives, and what the policy says about it."""

    kind: str
    id: str
    region_code: str
    jurisdiction: str | None
    description: str
    allowed: bool
    rule: str
    explanation: str


class PolicyPreview(msgspec.Struct):
    """What saving a proposed policy would do, written nowhere."""

    policy: PolicyFields
    resources: list[ResourceAssessment]
    outside: int  # resources that would fall outside (refused unless forced)


class EvaluateRequest(_In):
    region_code: Code


class EvaluateRead(msgspec.Struct):
    policy_version: int
    region_code: str
    decision: DecisionRead


ReportFormat = Literal["json", "csv", "html"]


class ReportPolicy(msgspec.Struct):
    """The policy version a report was made under (times as RFC 3339 text, as signed)."""

    version: int
    template: str | None
    changed_by_kind: str | None
    changed_by_id: str | None
    created_at: str | None
    name: str
    classification: str
    unrestricted: bool
    allowed_jurisdictions: list[str]
    allowed_regions: list[str]
    allowed_groups: list[str]
    keys_in_region: bool
    cross_border_export: bool
    operator_jurisdictions: list[str]


class ReportResource(msgspec.Struct):
    kind: str
    id: str
    region_code: str
    jurisdiction: str | None
    description: str
    status: Literal["permitted", "flagged"]
    rule: str
    explanation: str
    flagged_in_version: int | None  # the forced change that accepted it, if any


class ReportSummary(msgspec.Struct):
    resources: int
    permitted: int
    flagged: int


class ResidencyReport(msgspec.Struct):
    """The signed document: plain strings, integers, booleans and nulls only."""

    format: str
    org_id: str
    generated_at: str
    issuing_region: str
    policy: ReportPolicy
    summary: ReportSummary
    resources: list[ReportResource]


class ReportSignature(msgspec.Struct):
    """Ed25519 signature of the canonical JSON of ``report`` (docs/residency.md)."""

    algorithm: str
    key_id: str
    public_key: str
    signed: str
    value: str


class SignedReportRead(msgspec.Struct):
    report: ResidencyReport
    signature: ReportSignature
