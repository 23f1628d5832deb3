"""The permission matrix: what each tenant and provider role may do."""

from __future__ import annotations

import pytest

from control_plane.identity.roles import (
    API_KEY_SCOPES,
    PROVIDER_GRANTS,
    ROLE_RANK,
    TENANT_GRANTS,
    Permission,
    ProviderPermission,
    ProviderRole,
    TenantRole,
    provider_allows,
    tenant_allows,
)

WRITES = {p for p in Permission if p.value.endswith((":write", ":update"))}


class TestTenantRoles:
    def test_every_role_has_grants(self) -> None:
        assert set(TENANT_GRANTS) == set(TenantRole)

    def test_the_owner_may_do_everything(self) -> None:
        assert all(tenant_allows(TenantRole.OWNER, p) for p in Permission)

    def test_an_admin_may_do_everything_but_pay_or_delete_the_organization(self) -> None:
        denied = {p for p in Permission if not tenant_allows(TenantRole.ADMIN, p)}
        assert denied == {Permission.BILLING_WRITE, Permission.ORG_DELETE}

    def test_a_member_works_with_projects_and_keys_but_not_people(self) -> None:
        member = TENANT_GRANTS[TenantRole.MEMBER]
        assert {Permission.PROJECTS_READ, Permission.API_KEYS_WRITE} <= member
        assert Permission.MEMBERS_READ not in member
        assert Permission.MEMBERS_WRITE not in member
        assert Permission.PROJECTS_WRITE not in member

    def test_billing_sees_money_but_not_the_audit_trail(self) -> None:
        billing = TENANT_GRANTS[TenantRole.BILLING]
        assert {Permission.BILLING_READ, Permission.BILLING_WRITE} <= billing
        assert Permission.AUDIT_READ not in billing
        assert Permission.API_KEYS_WRITE not in billing

    def test_an_auditor_reads_everything_and_changes_nothing(self) -> None:
        auditor = TENANT_GRANTS[TenantRole.AUDITOR]
        assert not auditor & WRITES
        assert {p for p in Permission if p.value.endswith(":read")} <= auditor

    @pytest.mark.parametrize("role", list(TenantRole))
    def test_no_role_outgrants_the_owner(self, role: TenantRole) -> None:
        assert TENANT_GRANTS[role] <= TENANT_GRANTS[TenantRole.OWNER]


class TestRoleRanks:
    def test_owners_alone_hold_the_top_rank(self) -> None:
        top = max(ROLE_RANK.values())
        assert [r for r, rank in ROLE_RANK.items() if rank == top] == [TenantRole.OWNER]

    def test_admins_outrank_every_non_owner(self) -> None:
        others = set(TenantRole) - {TenantRole.OWNER, TenantRole.ADMIN}
        assert all(ROLE_RANK[TenantRole.ADMIN] > ROLE_RANK[r] for r in others)


class TestProviderRoles:
    def test_an_operator_reads_and_operates_but_does_not_enrol_or_edit_the_catalog(self) -> None:
        assert provider_allows(ProviderRole.OPERATOR, ProviderPermission.INVENTORY_READ)
        assert provider_allows(ProviderRole.OPERATOR, ProviderPermission.NODES_OPERATE)
        assert not provider_allows(ProviderRole.OPERATOR, ProviderPermission.NODES_ENROLL)
        assert not provider_allows(ProviderRole.OPERATOR, ProviderPermission.CATALOG_WRITE)

    def test_an_operator_admin_may_do_everything(self) -> None:
        assert PROVIDER_GRANTS[ProviderRole.OPERATOR_ADMIN] == frozenset(ProviderPermission)

    @pytest.mark.parametrize("permission", list(ProviderPermission))
    def test_tenant_users_have_no_provider_powers(self, permission: ProviderPermission) -> None:
        assert not provider_allows(None, permission)


class TestApiKeyScopes:
    def test_every_tenant_permission_can_be_a_key_scope(self) -> None:
        assert frozenset(Permission) == API_KEY_SCOPES

    def test_permission_names_are_resource_colon_action(self) -> None:
        for permission in [*Permission, *ProviderPermission]:
            resource, colon, action = permission.value.partition(":")
            assert (bool(resource), colon, bool(action)) == (True, ":", True), permission
