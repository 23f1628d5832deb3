"""Organization members: adding by email, role grants, the last owner, fresh permissions."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.models import Membership, User
from control_plane.identity.roles import TenantRole
from tests.fixtures.factories import Tenant, make_org, make_user, signed_in

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db)
    await db.commit()
    return tenant


def members_url(tenant: Tenant, user_id: str | None = None) -> str:
    base = f"/api/v1/orgs/{tenant.org_id}/members"
    return f"{base}/{user_id}" if user_id else base


async def member_roles(client: Client, tenant: Tenant, as_owner: dict[str, str]) -> dict[str, str]:
    response = await client.get(members_url(tenant), headers=as_owner)
    assert response.status_code == 200, response.text
    return {m["email"]: m["role"] for m in response.json()["items"]}


class TestAddMember:
    async def test_owner_adds_an_existing_user_by_email(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        newcomer = await make_user(db)
        await db.commit()
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])

        response = await client.post(
            members_url(org), json={"email": newcomer.email, "role": "member"}, headers=as_owner
        )

        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == newcomer.user_id
        assert (await member_roles(client, org, as_owner))[newcomer.email] == "member"
        as_newcomer = await signed_in(client, newcomer)
        me = (await client.get("/api/v1/me", headers=as_newcomer)).json()
        assert [(m["org_id"], m["role"]) for m in me["memberships"]] == [(org.org_id, "member")]

    async def test_unknown_email_becomes_an_invited_user_without_password(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])

        response = await client.post(
            members_url(org),
            json={"email": "Invitee@Example.test", "role": "auditor", "name": "Ivy Invitee"},
            headers=as_owner,
        )

        assert response.status_code == 201, response.text
        assert response.json()["email"] == "invitee@example.test"
        invited = (
            await db.execute(select(User).where(User.email == "invitee@example.test"))
        ).scalar_one()
        assert invited.password_hash is None
        assert invited.name == "Ivy Invitee"
        # Without a password nobody can sign in as the invitee (they use single sign-on).
        refused = await client.post(
            "/api/v1/auth/login", json={"email": "invitee@example.test", "password": "anything"}
        )
        assert refused.status_code == 401

    async def test_adding_someone_twice_is_a_409(self, client: Client, org: Tenant) -> None:
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        member_email = org.accounts[TenantRole.MEMBER].email

        response = await client.post(
            members_url(org), json={"email": member_email, "role": "admin"}, headers=as_owner
        )

        assert response.status_code == 409
        assert [e["field"] for e in response.json()["errors"]] == ["body.email"]
        assert (await member_roles(client, org, as_owner))[member_email] == "member"

    async def test_admin_cannot_grant_the_owner_role(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        outsider = await make_user(db)
        await db.commit()
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])

        response = await client.post(
            members_url(org), json={"email": outsider.email, "role": "owner"}, headers=as_admin
        )

        assert response.status_code == 403
        assert [e["field"] for e in response.json()["errors"]] == ["body.role"]
        assert outsider.email not in await member_roles(client, org, as_admin)

    async def test_admin_cannot_promote_a_member_to_owner(
        self, client: Client, org: Tenant
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        member = org.accounts[TenantRole.MEMBER]

        response = await client.patch(
            members_url(org, member.user_id), json={"role": "owner"}, headers=as_admin
        )

        assert response.status_code == 403
        assert [e["field"] for e in response.json()["errors"]] == ["body.role"]
        assert (await member_roles(client, org, as_admin))[member.email] == "member"

    async def test_admin_adds_a_member(self, client: Client, db: AsyncSession, org: Tenant) -> None:
        outsider = await make_user(db)
        await db.commit()
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])

        response = await client.post(
            members_url(org), json={"email": outsider.email, "role": "member"}, headers=as_admin
        )

        assert response.status_code == 201, response.text


class TestLastOwner:
    async def test_the_last_owner_cannot_be_demoted(self, client: Client, org: Tenant) -> None:
        owner = org.accounts[TenantRole.OWNER]
        as_owner = await signed_in(client, owner)

        response = await client.patch(
            members_url(org, owner.user_id), json={"role": "admin"}, headers=as_owner
        )

        assert response.status_code == 409
        assert response.json()["type"] == "/problems/conflict"
        assert (await member_roles(client, org, as_owner))[owner.email] == "owner"

    async def test_the_last_owner_cannot_be_removed(self, client: Client, org: Tenant) -> None:
        owner = org.accounts[TenantRole.OWNER]
        as_owner = await signed_in(client, owner)

        response = await client.delete(members_url(org, owner.user_id), headers=as_owner)

        assert response.status_code == 409
        assert owner.email in await member_roles(client, org, as_owner)

    async def test_an_owner_may_step_down_once_another_owner_exists(
        self, client: Client, org: Tenant
    ) -> None:
        owner = org.accounts[TenantRole.OWNER]
        admin = org.accounts[TenantRole.ADMIN]
        as_owner = await signed_in(client, owner)
        promoted = await client.patch(
            members_url(org, admin.user_id), json={"role": "owner"}, headers=as_owner
        )
        assert promoted.status_code == 200, promoted.text

        response = await client.patch(
            members_url(org, owner.user_id), json={"role": "member"}, headers=as_owner
        )

        assert response.status_code == 200, response.text
        as_new_owner = await signed_in(client, admin)
        roles = await member_roles(client, org, as_new_owner)
        assert (roles[owner.email], roles[admin.email]) == ("member", "owner")


class TestMemberPermissions:
    async def test_a_plain_member_cannot_list_members(self, client: Client, org: Tenant) -> None:
        as_member = await signed_in(client, org.accounts[TenantRole.MEMBER])

        response = await client.get(members_url(org), headers=as_member)

        assert response.status_code == 403
        assert response.json()["type"] == "/problems/forbidden"

    async def test_an_auditor_lists_members_but_cannot_change_them(
        self, client: Client, org: Tenant
    ) -> None:
        as_auditor = await signed_in(client, org.accounts[TenantRole.AUDITOR])
        member = org.accounts[TenantRole.MEMBER]

        listed = await client.get(members_url(org), headers=as_auditor)
        changed = await client.patch(
            members_url(org, member.user_id), json={"role": "admin"}, headers=as_auditor
        )

        assert listed.status_code == 200
        assert {m["email"] for m in listed.json()["items"]} == {
            a.email for a in org.accounts.values()
        }
        assert changed.status_code == 403

    async def test_another_orgs_members_are_not_found(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        other = await make_org(db, roles=(TenantRole.OWNER,))
        await db.commit()
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])

        response = await client.get(members_url(other), headers=as_owner)

        assert response.status_code == 404

    async def test_a_promotion_applies_to_the_users_next_request(
        self, client: Client, org: Tenant
    ) -> None:
        member = org.accounts[TenantRole.MEMBER]
        as_member = await signed_in(client, member)
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        assert (await client.get(members_url(org), headers=as_member)).status_code == 403

        promoted = await client.patch(
            members_url(org, member.user_id), json={"role": "admin"}, headers=as_owner
        )

        assert promoted.status_code == 200, promoted.text
        # Well inside the authenticator's cache lifetime: the change must not wait for it.
        assert (await client.get(members_url(org), headers=as_member)).status_code == 200

    async def test_a_demotion_applies_to_the_users_next_request(
        self, client: Client, org: Tenant
    ) -> None:
        admin = org.accounts[TenantRole.ADMIN]
        as_admin = await signed_in(client, admin)
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        assert (await client.get(members_url(org), headers=as_admin)).status_code == 200

        demoted = await client.patch(
            members_url(org, admin.user_id), json={"role": "member"}, headers=as_owner
        )

        assert demoted.status_code == 200, demoted.text
        assert (await client.get(members_url(org), headers=as_admin)).status_code == 403

    async def test_a_removed_member_loses_the_org_at_once(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        member = org.accounts[TenantRole.MEMBER]
        as_member = await signed_in(client, member)
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        assert (await client.get(f"/api/v1/orgs/{org.org_id}", headers=as_member)).is_success

        removed = await client.delete(members_url(org, member.user_id), headers=as_owner)

        assert removed.status_code == 204
        assert (await client.get(f"/api/v1/orgs/{org.org_id}", headers=as_member)).status_code == (
            404
        )
        left = await db.execute(
            select(Membership.id).where(
                Membership.org_id == org.org_id, Membership.user_id == member.user_id
            )
        )
        assert left.first() is None
