"""Request and response bodies of the identity API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from control_plane.http.fields import Description, Email, Name, NewPassword, Password, Slug
from control_plane.identity.roles import Permission, ProviderRole, TenantRole


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class LoginRequest(_In):
    email: Email
    password: Password


class SignupRequest(_In):
    email: Email
    name: Name
    password: NewPassword
    organization_name: Name
    organization_slug: Slug


class UserRead(msgspec.Struct):
    id: str
    email: str
    name: str
    provider_role: ProviderRole | None
    home_country: str | None
    created_at: datetime


class MembershipSummary(msgspec.Struct):
    org_id: str
    org_slug: str
    org_name: str
    role: TenantRole


class MeRead(msgspec.Struct):
    kind: str
    user: UserRead | None
    memberships: list[MembershipSummary]
    current_org_id: str | None
    project_id: str | None = None
    csrf_token: str | None = None


class SessionRead(msgspec.Struct):
    user: UserRead
    csrf_token: str
    expires_at: datetime


class SwitchOrg(_In):
    org_id: Annotated[str, Meta(max_length=40)]


class OrgCreate(_In):
    slug: Slug
    name: Name


class OrgUpdate(_In):
    name: Name | msgspec.UnsetType = msgspec.UNSET


class OrgRead(msgspec.Struct):
    id: str
    slug: str
    name: str
    created_at: datetime
    role: TenantRole | None = None


class MemberCreate(_In):
    email: Email
    role: TenantRole
    name: Name | msgspec.UnsetType = msgspec.UNSET


class MemberUpdate(_In):
    role: TenantRole


class MemberRead(msgspec.Struct):
    user_id: str
    email: str
    name: str
    role: TenantRole
    created_at: datetime


class ProjectCreate(_In):
    slug: Slug
    name: Name
    org_id: Annotated[str, Meta(max_length=40)] | None = None
    description: Description = ""


class ProjectUpdate(_In):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET


class ProjectRead(msgspec.Struct):
    id: str
    org_id: str
    slug: str
    name: str
    description: str
    created_at: datetime


class ApiKeyCreate(_In):
    name: Name
    scopes: Annotated[list[Permission], Meta(max_length=len(Permission))] | None = None
    role: TenantRole | None = None
    expires_in_days: Annotated[int, Meta(ge=1, le=730)] | None = 90
    # The key's inference gateway limits (unset: the operator's defaults).
    requests_per_second: Annotated[float, Meta(gt=0, le=100_000)] | None = None
    tokens_per_minute: Annotated[int, Meta(ge=1, le=1_000_000_000)] | None = None


class ApiKeyRead(msgspec.Struct):
    id: str
    org_id: str
    project_id: str
    name: str
    prefix: str
    role: TenantRole
    scopes: list[str]
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    requests_per_second: float | None = None  # gateway limits; None: operator's defaults
    tokens_per_minute: int | None = None


class ApiKeyCreated(msgspec.Struct):
    api_key: ApiKeyRead
    secret: str = msgspec.field(name="secret")
