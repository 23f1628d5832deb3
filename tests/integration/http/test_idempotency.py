"""``Idempotency-Key`` on POST: retries replay the first answer instead of acting twice."""

from __future__ import annotations

import hashlib
import json
import stat
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.http.models import IdempotencyRecord
from control_plane.identity.models import Project
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from tests.fixtures.factories import (
    Tenant,
    bearer,
    login,
    make_api_key,
    make_org,
    make_project,
    signed_in,
)

Client = AsyncTestClient[Litestar]
PROJECTS = "/api/v1/projects"


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER,))
    await db.commit()
    return tenant


@pytest.fixture
async def auth(client: Client, org: Tenant) -> dict[str, str]:
    """The owner's signed-in session (project API keys cannot create projects)."""
    return await login(client, org.accounts[TenantRole.OWNER])


async def create_project(
    client: Client, headers: dict[str, str], key: str | None, **body: Any
) -> Any:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return await client.post(
        PROJECTS, json={"slug": "alpha", "name": "Alpha", **body}, headers={**headers, **extra}
    )


async def projects_named(db: AsyncSession, org_id: str, slug: str) -> int:
    count = await db.execute(
        select(func.count())
        .select_from(Project)
        .where(Project.org_id == org_id, Project.slug == slug)
    )
    return int(count.scalar_one())


class TestReplay:
    async def test_a_retry_replays_the_first_answer_and_creates_nothing_more(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str]
    ) -> None:
        first = await create_project(client, auth, "create-alpha-1")
        retry = await create_project(client, auth, "create-alpha-1")

        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert retry.headers["content-type"] == first.headers["content-type"]
        assert await projects_named(db, org.org_id, "alpha") == 1

    async def test_an_answer_carrying_a_secret_is_not_kept_and_not_replayed(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str]
    ) -> None:
        project = await make_project(db, org.org_id, "keys")
        await db.commit()
        url = f"{PROJECTS}/{project}/api-keys"
        headers = {**auth, "Idempotency-Key": "mint-ci-key-1"}

        first = await client.post(url, json={"name": "ci"}, headers=headers)
        retry = await client.post(url, json={"name": "ci"}, headers=headers)

        assert first.status_code == 201, first.text
        assert first.headers["cache-control"] == "no-store"
        assert retry.status_code == 409
        assert "carried a secret and is not kept" in retry.json()["detail"]
        keys = await client.get(url, headers=auth)
        assert [k["name"] for k in keys.json()["items"]] == ["ci"]  # not minted twice
        await db.rollback()
        stored = (await db.execute(select(IdempotencyRecord.response_body))).scalars().all()
        secret = first.json()["secret"].encode()
        assert stored
        assert all(secret not in (body or b"") for body in stored)

    async def test_the_same_key_with_another_body_is_a_422(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str]
    ) -> None:
        assert (await create_project(client, auth, "create-once")).status_code == 201

        response = await create_project(client, auth, "create-once", slug="beta", name="Beta")

        assert response.status_code == 422
        problem = response.json()
        assert problem["type"] == "/problems/idempotency-key-reused"
        assert [e["field"] for e in problem["errors"]] == ["header.Idempotency-Key"]
        assert await projects_named(db, org.org_id, "beta") == 0

    async def test_keys_belong_to_the_credential_that_sent_them(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        other_org = await make_org(db, roles=(TenantRole.OWNER,))
        await db.commit()
        as_me = await signed_in(client, org.accounts[TenantRole.OWNER])
        as_them = await signed_in(client, other_org.accounts[TenantRole.OWNER])

        mine = await create_project(client, as_me, "shared-key")
        theirs = await create_project(client, as_them, "shared-key")

        assert mine.status_code == theirs.status_code == 201
        assert "idempotent-replayed" not in theirs.headers
        assert mine.json()["org_id"] == org.org_id
        assert theirs.json()["org_id"] == other_org.org_id
        assert theirs.json()["id"] != mine.json()["id"]

    async def test_session_callers_get_replays_too(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        csrf = await login(client, org.accounts[TenantRole.OWNER])

        first = await create_project(client, csrf, "portal-submit-1", slug="from-portal")
        retry = await create_project(client, csrf, "portal-submit-1", slug="from-portal")

        assert first.status_code == retry.status_code == 201
        assert retry.headers["idempotent-replayed"] == "true"
        assert await projects_named(db, org.org_id, "from-portal") == 1

    async def test_without_a_key_each_post_acts(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str]
    ) -> None:
        first = await create_project(client, auth, None)
        second = await create_project(client, auth, None)

        assert (first.status_code, second.status_code) == (201, 409)


class TestRefusedKeys:
    @pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\tinside", "é-accent"])
    async def test_a_malformed_key_is_a_400_and_nothing_happens(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str], key: str
    ) -> None:
        response = await client.post(
            PROJECTS,
            json={"slug": "alpha", "name": "Alpha"},
            headers={**auth, "Idempotency-Key": key.encode()},
        )

        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["header.Idempotency-Key"]
        assert await projects_named(db, org.org_id, "alpha") == 0

    async def test_the_longest_allowed_key_works(
        self, client: Client, auth: dict[str, str]
    ) -> None:
        assert (await create_project(client, auth, "k" * 255)).status_code == 201


class TestWhatIsRemembered:
    """The middleware forgets 401, 403, 409, 423, 429 and 5xx answers (a retry may succeed
    once the caller fixes the cause) and replays every other answer, errors included."""

    async def test_a_conflict_is_not_remembered_so_a_later_retry_acts(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str]
    ) -> None:
        taken = await make_project(db, org.org_id, "alpha")
        await db.commit()
        conflict = await create_project(client, auth, "after-cleanup")
        assert conflict.status_code == 409
        await db.execute(delete(Project).where(Project.id == taken))  # the owner tidies up
        await db.commit()

        retry = await create_project(client, auth, "after-cleanup")

        assert retry.status_code == 201, retry.text
        assert "idempotent-replayed" not in retry.headers
        assert await projects_named(db, org.org_id, "alpha") == 1

    async def test_a_forbidden_answer_is_not_remembered(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        read_only = bearer(await make_api_key(db, org, TenantRole.AUDITOR))
        await db.commit()

        first = await create_project(client, read_only, "try-anyway")
        second = await create_project(client, read_only, "try-anyway")

        assert first.status_code == second.status_code == 403
        assert "idempotent-replayed" not in second.headers

    async def test_an_invalid_request_is_replayed_as_it_was(
        self, client: Client, db: AsyncSession, org: Tenant, auth: dict[str, str]
    ) -> None:
        first = await create_project(client, auth, "bad-slug", slug="Not A Slug")
        retry = await create_project(client, auth, "bad-slug", slug="Not A Slug")

        assert first.status_code == retry.status_code == 400
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json()["errors"] == first.json()["errors"]

    async def test_get_requests_ignore_the_key(
        self, client: Client, org: Tenant, auth: dict[str, str]
    ) -> None:
        headers = {**auth, "Idempotency-Key": "reads-are-safe"}

        first = await client.get(PROJECTS, headers=headers)
        second = await client.get(PROJECTS, headers=headers)

        assert first.status_code == second.status_code == 200
        assert "idempotent-replayed" not in second.headers


class TestCredentialsAreNeverReplayed:
    async def test_a_sign_in_with_a_key_starts_a_new_session_each_time(
        self, client: Client, org: Tenant
    ) -> None:
        account = org.accounts[TenantRole.OWNER]
        body = {"email": account.email, "password": account.password}
        headers = {"Idempotency-Key": "sign-in-1"}

        first = await client.post("/api/v1/auth/login", json=body, headers=headers)
        second = await client.post("/api/v1/auth/login", json=body, headers=headers)

        assert first.status_code == second.status_code == 200
        assert "idempotent-replayed" not in second.headers
        assert first.json()["csrf_token"] != second.json()["csrf_token"]
        assert "cp_session" in second.cookies


class TestStoredDigest:
    async def test_the_stored_digest_cannot_be_recomputed_from_a_guessed_body(
        self,
        client: Client,
        db: AsyncSession,
        org: Tenant,
        auth: dict[str, str],
        settings: Settings,
    ) -> None:
        """A leaked idempotency table must not confirm a guess of what was sent (a secret
        value): the digest is an HMAC under the deployment's key, not a bare SHA-256."""
        body = {"slug": "alpha", "name": "Alpha"}
        response = await create_project(client, auth, "digest-1")
        assert response.status_code == 201
        stored = (await db.execute(select(IdempotencyRecord.request_hash))).scalar_one()
        for encoded in (
            json.dumps(body).encode(),
            json.dumps(body, separators=(",", ":")).encode(),
        ):
            guess = b"\0".join([b"POST", PROJECTS.encode(), b"", encoded])
            assert stored != hashlib.sha256(guess).hexdigest()
            assert stored != hashlib.sha256(encoded).hexdigest()
        key_file = settings.key_dir / "idempotency.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
