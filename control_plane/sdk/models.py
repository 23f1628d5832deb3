"""Typed answers of the API: the server's own response Structs, shared so they never drift."""

from __future__ import annotations

from control_plane.http.pagination import Page
from control_plane.identity.roles import Permission, ProviderRole, TenantRole
from control_plane.identity.schemas import (
    ApiKeyCreated,
    ApiKeyRead,
    MemberRead,
    MembershipSummary,
    MeRead,
    OrgRead,
    ProjectRead,
    SessionRead,
    UserRead,
)
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.schemas import (
    GpuModelRead,
    GpuRead,
    InventorySummary,
    NodeEventRead,
    NodeImportResult,
    NodeRead,
    RegionRead,
    RegionSummary,
    SiteRead,
    StateCount,
)
from control_plane.tenancies.drivers.base import PowerAction
from control_plane.tenancies.schemas import (
    ConsoleRead,
    CredentialRead,
    PowerResult,
    TenancyRead,
    Workspace,
)

__all__ = [
    "ApiKeyCreated",
    "ApiKeyRead",
    "ConsoleRead",
    "CredentialRead",
    "GpuModelRead",
    "GpuRead",
    "InventorySummary",
    "MeRead",
    "MemberRead",
    "MembershipSummary",
    "NodeEventRead",
    "NodeImportResult",
    "NodeRead",
    "NodeState",
    "OrgRead",
    "Page",
    "Permission",
    "PowerAction",
    "PowerResult",
    "ProjectRead",
    "ProviderRole",
    "RegionRead",
    "RegionSummary",
    "SessionRead",
    "SiteRead",
    "StateCount",
    "TenancyRead",
    "TenantRole",
    "UserRead",
    "Workspace",
]
