"""Projects and their API keys: CRUD, the secret shown once, revocation, expiry, scopes."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.clock import FrozenClock, OffsetClock
from control_plane.identity.models import ApiKey
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from tests.fixtures.factories import (
    Tenant,
    bearer,
    make_api_key,
    make_org,
    make_project,
    signed_in,
)

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db)
    await db.commit()
    return tenant


async def create_key(
    client: Client, project_id: str, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/projects/{project_id}/api-keys", json={"name": "ci", **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestProjects:
    async def test_create_read_update_list_and_delete(self, client: Client, org: Tenant) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])

        created = await client.post(
            "/api/v1/projects",
            json={"slug": "vision", "name": "Vision", "description": "image models"},
            headers=as_admin,
        )
        assert created.status_code == 201, created.text
        project = created.json()
        assert (project["org_id"], project["slug"]) == (org.org_id, "vision")
        url = f"/api/v1/projects/{project['id']}"
        assert (await client.get(url, headers=as_admin)).json() == project

        renamed = await client.patch(url, json={"name": "Computer vision"}, headers=as_admin)
        assert renamed.status_code == 200
        assert renamed.json()["name"] == "Computer vision"
        assert renamed.json()["description"] == "image models"
        listed = (await client.get("/api/v1/projects", headers=as_admin)).json()["items"]
        assert {p["slug"] for p in listed} == {"default", "vision"}

        assert (await client.delete(url, headers=as_admin)).status_code == 204
        assert (await client.get(url, headers=as_admin)).status_code == 404
        listed = (await client.get("/api/v1/projects", headers=as_admin)).json()["items"]
        assert [p["slug"] for p in listed] == ["default"]

    async def test_taken_slug_is_a_409_naming_the_slug(self, client: Client, org: Tenant) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])

        response = await client.post(
            "/api/v1/projects", json={"slug": "default", "name": "Again"}, headers=as_admin
        )

        assert response.status_code == 409
        assert [e["field"] for e in response.json()["errors"]] == ["body.slug"]

    async def test_the_same_slug_is_free_in_another_org(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        other = await make_org(db, roles=())
        await make_project(db, other.org_id, "shared-name")
        await db.commit()
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])

        response = await client.post(
            "/api/v1/projects", json={"slug": "shared-name", "name": "Mine"}, headers=as_admin
        )

        assert response.status_code == 201, response.text

    async def test_a_member_reads_projects_but_cannot_create_them(
        self, client: Client, org: Tenant
    ) -> None:
        as_member = await signed_in(client, org.accounts[TenantRole.MEMBER])

        listed = await client.get("/api/v1/projects", headers=as_member)
        created = await client.post(
            "/api/v1/projects", json={"slug": "nope", "name": "Nope"}, headers=as_member
        )

        assert [p["id"] for p in listed.json()["items"]] == [org.project_id]
        assert created.status_code == 403

    async def test_another_orgs_project_is_not_found(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        other = await make_org(db, roles=())
        await db.commit()
        as_owner = await signed_in(client, org.accounts[TenantRole.OWNER])

        for method in ("GET", "PATCH", "DELETE"):
            response = await client.request(
                method,
                f"/api/v1/projects/{other.project_id}",
                headers=as_owner,
                json={"name": "Mine now"} if method == "PATCH" else None,
            )
            assert response.status_code == 404, method
        listed = await client.get(
            "/api/v1/projects", params={"org_id": other.org_id}, headers=as_owner
        )
        assert listed.status_code == 404


class TestApiKeySecret:
    async def test_the_secret_is_shown_once_and_never_again(
        self, client: Client, org: Tenant
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])

        created = await create_key(client, org.project_id, as_admin)

        secret = created["secret"]
        key = created["api_key"]
        assert secret.startswith(f"{key['prefix']}_")
        fetched = await client.get(f"/api/v1/api-keys/{key['id']}", headers=as_admin)
        listed = await client.get(f"/api/v1/projects/{org.project_id}/api-keys", headers=as_admin)
        for response in (fetched, listed):
            assert response.status_code == 200
            assert secret not in response.text
            body = response.json()
            # No "secret" field (the "secrets:read" scope may well be listed).
            assert all("secret" not in item for item in body.get("items", [body]))
        assert fetched.json()["prefix"] == key["prefix"]
        assert [k["prefix"] for k in listed.json()["items"]] == [key["prefix"]]

    async def test_the_database_keeps_only_a_sha256_digest(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin)
        secret = created["secret"]

        row = (
            await db.execute(select(ApiKey).where(ApiKey.id == created["api_key"]["id"]))
        ).scalar_one()

        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        stored = [getattr(row, c.key) for c in ApiKey.__table__.columns]
        assert not any(isinstance(value, str) and secret in value for value in stored)

    async def test_the_key_works_as_a_bearer_token(self, client: Client, org: Tenant) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin)

        me = await client.get("/api/v1/me", headers=bearer(created["secret"]))
        projects = await client.get("/api/v1/projects", headers=bearer(created["secret"]))

        assert me.status_code == 200
        assert (me.json()["kind"], me.json()["project_id"]) == ("api_key", org.project_id)
        assert [p["id"] for p in projects.json()["items"]] == [org.project_id]

    @pytest.mark.parametrize(
        "header",
        ["Bearer cpk_nothere12345_abcdef", "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer"],
    )
    async def test_wrong_credentials_are_401(self, client: Client, header: str) -> None:
        response = await client.get("/api/v1/projects", headers={"Authorization": header})

        assert response.status_code == 401
        assert response.json()["type"] == "/problems/unauthenticated"

    async def test_a_tampered_secret_with_a_real_prefix_is_401(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        secret = await make_api_key(db, org)
        await db.commit()
        assert (await client.get("/api/v1/me", headers=bearer(secret))).status_code == 200

        tampered = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")

        assert (await client.get("/api/v1/me", headers=bearer(tampered))).status_code == 401

    async def test_last_used_at_is_recorded_after_use(self, client: Client, org: Tenant) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin)
        key_url = f"/api/v1/api-keys/{created['api_key']['id']}"
        assert (await client.get(key_url, headers=as_admin)).json()["last_used_at"] is None

        assert (await client.get("/api/v1/me", headers=bearer(created["secret"]))).is_success

        assert (await client.get(key_url, headers=as_admin)).json()["last_used_at"] is not None


class TestApiKeyLifetime:
    async def test_a_revoked_key_is_refused_at_once_on_the_same_replica(
        self, client: Client, org: Tenant
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin)
        auth = bearer(created["secret"])
        assert (await client.get("/api/v1/projects", headers=auth)).status_code == 200

        revoked = await client.post(
            f"/api/v1/api-keys/{created['api_key']['id']}/revoke", headers=as_admin
        )

        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert (await client.get("/api/v1/projects", headers=auth)).status_code == 401

    async def test_another_replica_refuses_a_revoked_key_within_the_cache_lifetime(
        self, client: Client, org: Tenant, settings: Settings, clock: OffsetClock
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin)
        auth = bearer(created["secret"])
        replica = create_app(settings, clock=clock, configure_logs=False)
        async with AsyncTestClient(app=replica) as other:
            assert (await other.get("/api/v1/projects", headers=auth)).status_code == 200
            revoked = await client.post(
                f"/api/v1/api-keys/{created['api_key']['id']}/revoke", headers=as_admin
            )
            assert revoked.status_code == 200

            clock.advance(settings.api_key_cache_seconds)

            assert (await other.get("/api/v1/projects", headers=auth)).status_code == 401

    async def test_a_key_in_use_is_reloaded_behind_the_requests_before_its_cache_age(
        self, client: Client, org: Tenant, settings: Settings, clock: OffsetClock
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin)
        auth = bearer(created["secret"])
        frozen = FrozenClock(clock.now())  # the replica's cache ages only when told to
        replica = create_app(settings, clock=frozen, configure_logs=False)
        async with AsyncTestClient(app=replica) as other:
            assert (await other.get("/api/v1/projects", headers=auth)).status_code == 200
            revoked = await client.post(
                f"/api/v1/api-keys/{created['api_key']['id']}/revoke", headers=as_admin
            )
            assert revoked.status_code == 200

            frozen.advance(settings.api_key_cache_seconds / 2)

            # Answered from the cache, which starts a reload: with the replica's clock
            # still, only that reload can make it see the revocation.
            statuses = [(await other.get("/api/v1/projects", headers=auth)).status_code]
            while statuses[-1] == 200 and len(statuses) < 200:
                await asyncio.sleep(0.01)  # the reload runs on the app's own connection
                statuses.append((await other.get("/api/v1/projects", headers=auth)).status_code)
            assert statuses[0] == 200
            assert statuses[-1] == 401

    async def test_an_expired_key_is_refused(
        self, client: Client, org: Tenant, clock: OffsetClock
    ) -> None:
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        created = await create_key(client, org.project_id, as_admin, expires_in_days=1)
        auth = bearer(created["secret"])
        assert (await client.get("/api/v1/projects", headers=auth)).status_code == 200

        clock.advance(24 * 3600 + 1)

        response = await client.get("/api/v1/projects", headers=auth)
        assert response.status_code == 401
        assert response.json()["type"] == "/problems/unauthenticated"

    async def test_deleting_the_project_disables_its_keys(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        doomed = await make_project(db, org.org_id, "doomed")
        secret = await make_api_key(db, org, project_id=doomed)
        await db.commit()
        as_admin = await signed_in(client, org.accounts[TenantRole.ADMIN])
        assert (await client.get("/api/v1/me", headers=bearer(secret))).status_code == 200

        deleted = await client.delete(f"/api/v1/projects/{doomed}", headers=as_admin)

        assert deleted.status_code == 204
        assert (await client.get("/api/v1/me", headers=bearer(secret))).status_code == 401


class TestApiKeyReach:
    async def test_scopes_limit_what_a_key_can_do(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        secret = await make_api_key(db, org, TenantRole.ADMIN, scopes=["projects:read"])
        await db.commit()

        listed = await client.get("/api/v1/projects", headers=bearer(secret))
        created = await client.post(
            "/api/v1/projects", json={"slug": "new", "name": "New"}, headers=bearer(secret)
        )

        assert listed.status_code == 200
        assert created.status_code == 403
        assert created.json()["type"] == "/problems/forbidden"

    async def test_a_project_key_cannot_create_or_delete_projects(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        secret = await make_api_key(db, org, TenantRole.ADMIN)
        await db.commit()

        created = await client.post(
            "/api/v1/projects", json={"slug": "new", "name": "New"}, headers=bearer(secret)
        )
        deleted = await client.delete(f"/api/v1/projects/{org.project_id}", headers=bearer(secret))

        assert created.status_code == 403, created.text
        assert "Project API keys cannot create projects" in created.json()["detail"]
        assert deleted.status_code == 403
        still_there = await client.get(f"/api/v1/projects/{org.project_id}", headers=bearer(secret))
        assert still_there.status_code == 200

    async def test_a_member_cannot_mint_an_admin_key(self, client: Client, org: Tenant) -> None:
        as_member = await signed_in(client, org.accounts[TenantRole.MEMBER])

        response = await client.post(
            f"/api/v1/projects/{org.project_id}/api-keys",
            json={"name": "escalate", "role": "admin"},
            headers=as_member,
        )

        assert response.status_code == 403
        assert [e["field"] for e in response.json()["errors"]] == ["body.role"]
        listed = await client.get(f"/api/v1/projects/{org.project_id}/api-keys", headers=as_member)
        assert listed.json()["items"] == []

    async def test_a_member_key_carries_only_member_scopes(
        self, client: Client, org: Tenant
    ) -> None:
        as_member = await signed_in(client, org.accounts[TenantRole.MEMBER])

        created = await create_key(client, org.project_id, as_member)
        refused = await client.post(
            f"/api/v1/projects/{org.project_id}/api-keys",
            json={"name": "wider", "scopes": ["members:write"]},
            headers=as_member,
        )

        assert created["api_key"]["role"] == "member"
        assert "members:write" not in created["api_key"]["scopes"]
        assert refused.status_code == 403
        assert [e["field"] for e in refused.json()["errors"]] == ["body.scopes"]

    async def test_a_key_cannot_mint_a_key_wider_than_itself(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        secret = await make_api_key(
            db, org, TenantRole.ADMIN, scopes=["api-keys:write", "projects:read"]
        )
        await db.commit()

        response = await client.post(
            f"/api/v1/projects/{org.project_id}/api-keys",
            json={"name": "wider", "scopes": ["projects:write"]},
            headers=bearer(secret),
        )

        assert response.status_code == 403
        assert [e["field"] for e in response.json()["errors"]] == ["body.scopes"]

    async def test_a_key_sees_only_its_own_project(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        sibling = await make_project(db, org.org_id, "sibling")
        sibling_key = await make_api_key(db, org, project_id=sibling)
        secret = await make_api_key(db, org, TenantRole.OWNER)
        await db.commit()
        auth = bearer(secret)

        listed = await client.get("/api/v1/projects", headers=auth)
        assert [p["id"] for p in listed.json()["items"]] == [org.project_id]
        for path in (f"/api/v1/projects/{sibling}", f"/api/v1/projects/{sibling}/api-keys"):
            assert (await client.get(path, headers=auth)).status_code == 404, path
        assert (
            await client.patch(f"/api/v1/projects/{sibling}", json={"name": "x"}, headers=auth)
        ).status_code == 404
        assert (await client.delete(f"/api/v1/projects/{sibling}", headers=auth)).status_code == (
            404
        )
        minted = await client.post(
            f"/api/v1/projects/{sibling}/api-keys", json={"name": "x"}, headers=auth
        )
        assert minted.status_code == 404
        # ...and the sibling project's keys are out of reach too.
        sibling_key_id = (
            await db.execute(select(ApiKey.id).where(ApiKey.project_id == sibling))
        ).scalar_one()
        assert sibling_key  # created above
        for path in (f"/api/v1/api-keys/{sibling_key_id}",):
            assert (await client.get(path, headers=auth)).status_code == 404
        revoke = await client.post(f"/api/v1/api-keys/{sibling_key_id}/revoke", headers=auth)
        assert revoke.status_code == 404

    async def test_a_key_cannot_reach_another_org(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        other = await make_org(db, roles=())
        secret = await make_api_key(db, org, TenantRole.OWNER)
        await db.commit()
        auth = bearer(secret)

        assert (await client.get(f"/api/v1/orgs/{other.org_id}", headers=auth)).status_code == 404
        assert (
            await client.get(f"/api/v1/projects/{other.project_id}", headers=auth)
        ).status_code == 404
        assert (
            await client.get("/api/v1/projects", params={"org_id": other.org_id}, headers=auth)
        ).status_code == 404
