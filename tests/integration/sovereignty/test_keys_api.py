"""Secrets and data keys through the API: values go in and never come out, roles decide who
writes, rotation makes a new version, and deleting the organization shreds its keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.models import Organization
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from tests.fixtures.factories import Tenant, bearer, make_api_key, make_org, signed_in

Client = AsyncTestClient[Litestar]
VALUE = "hf_live_Q2xVbG9uZ1NlY3JldFZhbHVl"


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db)
    await db.commit()
    return tenant


@pytest.fixture
async def owner(client: Client, org: Tenant) -> dict[str, str]:
    return await signed_in(client, org.accounts[TenantRole.OWNER])


def secrets_url(org: Tenant, tail: str = "") -> str:
    return f"/api/v1/orgs/{org.org_id}/secrets{tail}"


async def create_secret(
    client: Client, org: Tenant, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    payload = {"name": "hf-token", "kind": "model_repository_credentials", "value": VALUE, **body}
    response = await client.post(secrets_url(org), json=payload, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestSecretsApi:
    async def test_a_stored_secret_shows_its_metadata_but_never_its_value(
        self, client: Client, org: Tenant, owner: dict[str, str], settings: Settings
    ) -> None:
        created = await create_secret(client, org, owner, description="Hugging Face pull")

        assert created["name"] == "hf-token"
        assert created["kind"] == "model_repository_credentials"
        assert created["region"] == settings.region
        assert created["data_key_version"] == 1
        assert "value" not in created
        listed = await client.get(secrets_url(org), headers=owner)
        one = await client.get(secrets_url(org, f"/{created['id']}"), headers=owner)
        for response in (listed, one):
            assert response.status_code == 200
            assert VALUE not in response.text
        assert [s["id"] for s in listed.json()["items"]] == [created["id"]]

    async def test_the_platform_reads_back_exactly_what_was_stored(
        self,
        client: Client,
        org: Tenant,
        owner: dict[str, str],
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> None:
        binary = bytes(range(256))
        created = await create_secret(
            client,
            org,
            owner,
            name="bmc",
            kind="bmc_credentials",
            value=base64.b64encode(binary).decode(),
            value_encoding="base64",
        )

        value = await service.reveal(
            db,
            org_id=org.org_id,
            secret_id=created["id"],
            justification="test reads it back",
            actor=service.Actor.system("tests"),
            clock=clock,
            settings=settings,
        )
        await db.commit()

        assert value == binary

    async def test_replacing_a_value_keeps_the_secret_and_marks_it_rotated(
        self,
        client: Client,
        org: Tenant,
        owner: dict[str, str],
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> None:
        created = await create_secret(client, org, owner)

        replaced = await client.put(
            secrets_url(org, f"/{created['id']}"), json={"value": "new-value"}, headers=owner
        )

        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["rotated_at"] is not None
        assert replaced.json()["id"] == created["id"]
        value = await service.reveal(
            db,
            org_id=org.org_id,
            secret_id=created["id"],
            justification="check replacement",
            actor=service.Actor.system("tests"),
            clock=clock,
            settings=settings,
        )
        await db.commit()
        assert value == b"new-value"

    async def test_names_are_unique_and_deleting_frees_the_name(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        created = await create_secret(client, org, owner)

        again = await client.post(
            secrets_url(org),
            json={"name": "hf-token", "kind": "other", "value": "x"},
            headers=owner,
        )
        assert again.status_code == 409
        assert again.json()["errors"] == [{"field": "body.name", "reason": "already taken"}]

        deleted = await client.delete(secrets_url(org, f"/{created['id']}"), headers=owner)
        assert deleted.status_code == 204
        assert (
            await client.get(secrets_url(org, f"/{created['id']}"), headers=owner)
        ).status_code == 404
        await create_secret(client, org, owner)

    async def test_bad_values_are_refused_with_the_field_named(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        bad_base64 = await client.post(
            secrets_url(org),
            json={"name": "b", "kind": "other", "value": "!!!", "value_encoding": "base64"},
            headers=owner,
        )
        too_big = await client.post(
            secrets_url(org),
            json={"name": "c", "kind": "other", "value": "x" * 70_000},
            headers=owner,
        )
        unknown_kind = await client.post(
            secrets_url(org), json={"name": "d", "kind": "password", "value": "x"}, headers=owner
        )

        assert bad_base64.status_code == 400
        assert bad_base64.json()["errors"][0]["field"] == "body.value"
        assert too_big.status_code == 400
        assert unknown_kind.status_code == 400

    async def test_another_region_is_refused_here(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        response = await client.post(
            secrets_url(org),
            json={"name": "x", "kind": "other", "value": "v", "region": "se-north-1"},
            headers=owner,
        )

        assert response.status_code == 409
        assert "held by that region" in response.json()["detail"]


class TestWhoMay:
    async def test_members_and_auditors_read_metadata_but_cannot_write(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        created = await create_secret(client, org, owner)
        for role in (TenantRole.MEMBER, TenantRole.AUDITOR):
            headers = await signed_in(client, org.accounts[role])

            assert (await client.get(secrets_url(org), headers=headers)).status_code == 200
            put = await client.put(
                secrets_url(org, f"/{created['id']}"), json={"value": "x"}, headers=headers
            )
            assert put.status_code == 403, role
            rotate = await client.post(f"/api/v1/orgs/{org.org_id}/keys/rotate", headers=headers)
            assert rotate.status_code == 403, role

    async def test_billing_sees_no_secrets_and_other_tenants_not_even_the_org(
        self, client: Client, org: Tenant, owner: dict[str, str], db: AsyncSession
    ) -> None:
        await create_secret(client, org, owner)
        other = await make_org(db)
        other_key = await make_api_key(db, other, TenantRole.OWNER)
        await db.commit()

        billing = await signed_in(client, org.accounts[TenantRole.BILLING])
        assert (await client.get(secrets_url(org), headers=billing)).status_code == 403
        assert (await client.get(secrets_url(org), headers=bearer(other_key))).status_code == 404

    async def test_an_api_key_with_the_scope_stores_secrets(
        self, client: Client, org: Tenant, db: AsyncSession
    ) -> None:
        key = await make_api_key(db, org, TenantRole.ADMIN)
        await db.commit()

        created = await create_secret(client, org, bearer(key))

        assert created["created_by"] is not None


class TestDataKeysApi:
    async def test_rotation_adds_a_version_for_new_writes_and_lists_newest_first(
        self, client: Client, org: Tenant, owner: dict[str, str], settings: Settings
    ) -> None:
        first = await create_secret(client, org, owner, name="one")

        rotated = await client.post(f"/api/v1/orgs/{org.org_id}/keys/rotate", headers=owner)
        second = await create_secret(client, org, owner, name="two")
        keys = await client.get(f"/api/v1/orgs/{org.org_id}/keys", headers=owner)

        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["version"] == 2
        assert (first["data_key_version"], second["data_key_version"]) == (1, 2)
        listed = keys.json()["items"]
        assert [(k["version"], k["state"]) for k in listed] == [(2, "active"), (1, "retired")]
        assert {k["region"] for k in listed} == {settings.region}
        assert {k["kek_id"] for k in listed} == {f"file:{settings.region}"}
        assert all(k["kek_version"] == 1 for k in listed)
        assert "wrapped_key" not in keys.text

    async def test_rotating_before_any_secret_makes_the_first_version(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        rotated = await client.post(f"/api/v1/orgs/{org.org_id}/keys/rotate", headers=owner)

        assert rotated.json()["version"] == 1
        assert rotated.json()["state"] == "active"


class TestOrganizationDeletion:
    async def test_only_the_owner_deletes_and_must_confirm_with_the_slug(
        self, client: Client, org: Tenant, owner: dict[str, str]
    ) -> None:
        admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        url = f"/api/v1/orgs/{org.org_id}"

        as_admin = await client.delete(url, params={"confirm": org.slug}, headers=admin)
        unconfirmed = await client.delete(url, params={"confirm": "nope"}, headers=owner)
        missing = await client.delete(url, headers=owner)

        assert as_admin.status_code == 403
        assert unconfirmed.status_code == 400
        assert unconfirmed.json()["errors"][0]["field"] == "query.confirm"
        assert missing.status_code == 400
        assert (await client.get(url, headers=owner)).status_code == 200

    async def test_an_api_key_cannot_delete_its_organization(
        self, client: Client, org: Tenant, db: AsyncSession
    ) -> None:
        key = await make_api_key(db, org, TenantRole.OWNER)
        await db.commit()

        response = await client.delete(
            f"/api/v1/orgs/{org.org_id}", params={"confirm": org.slug}, headers=bearer(key)
        )

        assert response.status_code == 403

    async def test_a_deleted_org_disappears_and_its_members_and_keys_lose_access(
        self, client: Client, org: Tenant, owner: dict[str, str], db: AsyncSession
    ) -> None:
        key = await make_api_key(db, org, TenantRole.ADMIN)
        await db.commit()
        member = await signed_in(client, org.accounts[TenantRole.MEMBER])
        await create_secret(client, org, owner)

        deleted = await client.delete(
            f"/api/v1/orgs/{org.org_id}", params={"confirm": org.slug}, headers=owner
        )

        assert deleted.status_code == 204, deleted.text
        for headers in (owner, member):
            assert (await client.get("/api/v1/orgs", headers=headers)).json()["items"] == []
            assert (
                await client.get(f"/api/v1/orgs/{org.org_id}", headers=headers)
            ).status_code == 404
            me = (await client.get("/api/v1/me", headers=headers)).json()
            assert me["memberships"] == []
        assert (await client.get(secrets_url(org), headers=bearer(key))).status_code == 401
        row = await db.get(Organization, org.org_id)
        assert row is not None
        assert row.deleted_at is not None
        slugs = (await db.execute(select(Organization.slug))).scalars().all()
        assert org.slug in slugs  # the row stays for the ledger
