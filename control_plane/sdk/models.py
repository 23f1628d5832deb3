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

__all__ = [
    "ApiKeyCreated",
    "ApiKeyRead",
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
    "ProjectRead",
    "ProviderRole",
    "RegionRead",
    "RegionSummary",
    "SessionRead",
    "SiteRead",
    "StateCount",
    "TenantRole",
    "UserRead",
]
