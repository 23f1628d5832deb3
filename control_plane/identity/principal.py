"""Who is calling: a logged-in user (session) or an API key, with their roles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from control_plane.identity.roles import Permission, ProviderRole, TenantRole


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. Built only by :mod:`control_plane.identity.authentication`."""

    kind: Literal["user", "api_key"]
    id: str
    display: str
    memberships: Mapping[str, TenantRole]
    user_id: str | None = None
    provider_role: ProviderRole | None = None
    home_country: str | None = None
    scopes: frozenset[Permission] | None = None
    project_id: str | None = None
    session_id: str | None = None
    csrf_token: str | None = None
    current_org_id: str | None = None
    expires_at: datetime | None = field(default=None, compare=False)
    # An API key's own inference gateway limits (None: the operator's defaults).
    requests_per_second: float | None = None
    tokens_per_minute: int | None = None
    # The organizations of ``memberships`` by id -> name (the portal's organization
    # switcher and page headers), loaded with them and as fresh as they are.
    org_names: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def ref(self) -> str:
        """How logs and the audit trail name this caller."""
        return f"{self.kind}:{self.id}"

    @property
    def default_org_id(self) -> str | None:
        """The organization a request without an explicit one acts on."""
        if self.current_org_id in self.memberships:
            return self.current_org_id
        return next(iter(sorted(self.memberships)), None)
