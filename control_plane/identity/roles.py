"""Roles and the permission matrix: the only place that says who may do what."""

from __future__ import annotations

from enum import StrEnum


class TenantRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    BILLING = "billing"
    AUDITOR = "auditor"


class ProviderRole(StrEnum):
    OPERATOR = "operator"
    OPERATOR_ADMIN = "operator-admin"


class Permission(StrEnum):
    """Tenant permissions (checked against a membership role in one organization)."""

    ORG_READ = "org:read"
    ORG_UPDATE = "org:update"
    MEMBERS_READ = "members:read"
    MEMBERS_WRITE = "members:write"
    PROJECTS_READ = "projects:read"
    PROJECTS_WRITE = "projects:write"
    API_KEYS_READ = "api-keys:read"
    API_KEYS_WRITE = "api-keys:write"
    BILLING_READ = "billing:read"
    BILLING_WRITE = "billing:write"
    AUDIT_READ = "audit:read"
    AUDIT_EXPORT = "audit:export"
    POLICY_READ = "policy:read"
    POLICY_WRITE = "policy:write"  # residency policy changes
    ACCESS_READ = "access:read"  # operator access requests and grants (access transparency)
    ACCESS_APPROVE = "access:approve"  # approve or deny operator access, review break-glass
    SECRETS_READ = "secrets:read"  # secret metadata and data-key versions (never values)
    SECRETS_WRITE = "secrets:write"  # store, replace and delete secrets; rotate the data key
    ORG_DELETE = "org:delete"  # delete the organization and crypto-shred its keys
    TENANCIES_READ = "tenancies:read"  # tenancies, their events, quotas and shapes
    TENANCIES_WRITE = "tenancies:write"  # create, resize and release tenancies
    ENDPOINTS_READ = "endpoints:read"  # inference endpoints, versions, events, metrics
    ENDPOINTS_WRITE = "endpoints:write"  # create, scale, version, split traffic, delete
    INFERENCE_INVOKE = "inference:invoke"  # call endpoints through the gateway
    MODELS_VALIDATE = "models:validate"  # approve or reject model versions (governance)
    USAGE_READ = "usage:read"  # metered usage (GPU-seconds, tokens) by any dimension
    INSIGHTS_READ = "insights:read"  # GPU waste, utilization and right-sizing advice
    INSIGHTS_WRITE = "insights:write"  # apply, dismiss, snooze advice; analyse now


class ProviderPermission(StrEnum):
    """Provider-side permissions (checked against a user's provider role)."""

    INVENTORY_READ = "inventory:read"
    NODES_OPERATE = "nodes:operate"  # drain, maintenance, return to service
    NODES_ENROLL = "nodes:enroll"
    CATALOG_WRITE = "catalog:write"  # regions, sites, GPU models
    USERS_READ = "users:read"
    ACCESS_REQUEST = "access:request"  # ask a tenant for access to one of its resources
    BREAK_GLASS = "access:break-glass"  # emergency access, reviewed afterwards
    KEYS_MANAGE = "keys:manage"  # rotate key-encryption and audit signing keys
    PROVIDER_AUDIT_READ = "provider-audit:read"  # the provider's own ledger chains
    CAPACITY_WRITE = "capacity:write"  # shapes and GPU quotas
    SECRETS_MANAGE = "provider-secrets:manage"  # BMC credentials and other driver secrets
    USAGE_INGEST = "usage:ingest"  # batch usage from trusted sources; per-source counts
    PRICES_WRITE = "prices:write"  # price books, contract overrides, commitments, credits
    BILLING_OPERATE = "billing:operate"  # invoice runs, finalize, void, credit notes


_ALL = frozenset(Permission)
_READ_ONLY = frozenset(
    {
        Permission.ORG_READ,
        Permission.MEMBERS_READ,
        Permission.PROJECTS_READ,
        Permission.API_KEYS_READ,
        Permission.BILLING_READ,
        Permission.AUDIT_READ,
        Permission.AUDIT_EXPORT,
        Permission.POLICY_READ,
        Permission.ACCESS_READ,
        Permission.SECRETS_READ,
        Permission.TENANCIES_READ,
        Permission.ENDPOINTS_READ,
        Permission.USAGE_READ,
        Permission.INSIGHTS_READ,
    }
)

TENANT_GRANTS: dict[TenantRole, frozenset[Permission]] = {
    TenantRole.OWNER: _ALL,
    TenantRole.ADMIN: _ALL - {Permission.BILLING_WRITE, Permission.ORG_DELETE},
    TenantRole.MEMBER: frozenset(
        {
            Permission.ORG_READ,
            Permission.PROJECTS_READ,
            Permission.API_KEYS_READ,
            Permission.API_KEYS_WRITE,
            Permission.SECRETS_READ,
            Permission.TENANCIES_READ,
            Permission.TENANCIES_WRITE,
            Permission.ENDPOINTS_READ,
            Permission.ENDPOINTS_WRITE,
            Permission.INFERENCE_INVOKE,
            Permission.USAGE_READ,
            Permission.INSIGHTS_READ,
            Permission.INSIGHTS_WRITE,
        }
    ),
    TenantRole.BILLING: frozenset(
        {
            Permission.ORG_READ,
            Permission.PROJECTS_READ,
            Permission.BILLING_READ,
            Permission.BILLING_WRITE,
            Permission.USAGE_READ,
            Permission.INSIGHTS_READ,
        }
    ),
    TenantRole.AUDITOR: _READ_ONLY,
}

PROVIDER_GRANTS: dict[ProviderRole, frozenset[ProviderPermission]] = {
    ProviderRole.OPERATOR: frozenset(
        {
            ProviderPermission.INVENTORY_READ,
            ProviderPermission.NODES_OPERATE,
            ProviderPermission.ACCESS_REQUEST,
        }
    ),
    ProviderRole.OPERATOR_ADMIN: frozenset(ProviderPermission),
}

# A role may hand out only roles at or below its own rank (owners alone create owners).
ROLE_RANK: dict[TenantRole, int] = {
    TenantRole.OWNER: 4,
    TenantRole.ADMIN: 3,
    TenantRole.MEMBER: 1,
    TenantRole.BILLING: 1,
    TenantRole.AUDITOR: 1,
}

# Scopes an API key can carry; a key never exceeds the role of the user who made it.
API_KEY_SCOPES: frozenset[Permission] = frozenset(Permission)


def tenant_allows(role: TenantRole, permission: Permission) -> bool:
    return permission in TENANT_GRANTS[role]


def provider_allows(role: ProviderRole | None, permission: ProviderPermission) -> bool:
    return role is not None and permission in PROVIDER_GRANTS[role]
