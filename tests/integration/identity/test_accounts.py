"""Accounts: password sign-in, lockout, rate limits, sign-up, sessions and the current org."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.clock import OffsetClock
from control_plane.identity import accounts
from control_plane.identity.models import Membership, User
from control_plane.identity.roles import TenantRole
from control_plane.ids import new_id
from control_plane.settings import Settings
from tests.fixtures.factories import PASSWORD, Account, login, make_org, make_project

Client = AsyncTestClient[Litestar]
LOGIN = "/api/v1/auth/login"
SIGNUP = "/api/v1/auth/signup"


async def owner_of_new_org(db: AsyncSession) -> Account:
    tenant = await make_org(db, roles=(TenantRole.OWNER,))
    await db.commit()
    return tenant.accounts[TenantRole.OWNER]


async def try_login(client: Client, email: str, password: str) -> Any:
    return await client.post(LOGIN, json={"email": email, "password": password})


def signup_body(**overrides: str) -> dict[str, str]:
    body = {
        "email": f"founder-{new_id('x')[-8:]}@example.test",
        "name": "Ada Founder",
        "password": "a long enough password",
        "organization_name": "Ada Labs",
        "organization_slug": f"ada-{new_id('x')[-8:]}",
    }
    body.update(overrides)
    return body


def session_cookie(response: Any) -> str:
    """The ``Set-Cookie`` header that carries the session."""
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("cp_session=")]
    assert len(cookies) == 1, response.headers
    return str(cookies[0])


class TestPasswordLogin:
    async def test_login_sets_an_httponly_lax_session_cookie(
        self, client: Client, db: AsyncSession
    ) -> None:
        owner = await owner_of_new_org(db)

        response = await try_login(client, owner.email, PASSWORD)

        assert response.status_code == 200, response.text
        assert response.json()["user"]["email"] == owner.email
        attributes = [a.strip().lower() for a in session_cookie(response).split(";")]
        assert "httponly" in attributes
        assert "samesite=lax" in attributes
        assert "secure" not in attributes  # the test settings serve plain http
        me = await client.get("/api/v1/me")
        assert me.status_code == 200
        assert me.json()["user"]["email"] == owner.email

    async def test_cookie_is_secure_when_settings_say_so(
        self, settings: Settings, clock: OffsetClock, db: AsyncSession
    ) -> None:
        owner = await owner_of_new_org(db)
        secure_app = create_app(
            settings.model_copy(update={"cookie_secure": True}), clock=clock, configure_logs=False
        )
        async with AsyncTestClient(app=secure_app) as secure_client:
            response = await try_login(secure_client, owner.email, PASSWORD)

        assert response.status_code == 200, response.text
        attributes = [a.strip().lower() for a in session_cookie(response).split(";")]
        assert "secure" in attributes
        assert "httponly" in attributes

    async def test_email_is_matched_case_insensitively(
        self, client: Client, db: AsyncSession
    ) -> None:
        owner = await owner_of_new_org(db)

        response = await try_login(client, owner.email.upper(), PASSWORD)

        assert response.status_code == 200, response.text

    async def test_wrong_password_is_a_401_problem_without_a_session(
        self, client: Client, db: AsyncSession
    ) -> None:
        owner = await owner_of_new_org(db)

        response = await try_login(client, owner.email, "not the password")

        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/unauthenticated"
        assert not response.headers.get_list("set-cookie")
        assert (await client.get("/api/v1/me")).status_code == 401

    async def test_unknown_email_gets_the_same_answer_as_a_wrong_password(
        self, client: Client, db: AsyncSession
    ) -> None:
        owner = await owner_of_new_org(db)

        wrong_password = await try_login(client, owner.email, "not the password")
        unknown = await try_login(client, "nobody-here@example.test", "not the password")

        assert unknown.status_code == wrong_password.status_code == 401
        strip = {"instance", "request_id"}
        assert {k: v for k, v in unknown.json().items() if k not in strip} == {
            k: v for k, v in wrong_password.json().items() if k not in strip
        }

    async def test_password_is_stored_as_an_argon2_hash(
        self, client: Client, db: AsyncSession
    ) -> None:
        body = signup_body()
        assert (await client.post(SIGNUP, json=body)).status_code == 201

        stored = (
            await db.execute(select(User.password_hash).where(User.email == body["email"]))
        ).scalar_one()

        assert stored is not None
        assert stored.startswith("$argon2")
        assert body["password"] not in stored


class TestPasswordWorkOffTheEventLoop:
    """argon2 takes tens of ms of CPU: done on the event loop it stalled every request in
    flight on the replica. Sign-in and sign-up hash and verify on a worker thread."""

    @staticmethod
    def spy(monkeypatch: Any, name: str) -> list[bool]:
        on_loop_thread: list[bool] = []
        real = getattr(accounts, name)

        def recorded(*args: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop_thread.append(True)
            except RuntimeError:  # no event loop runs on this thread
                on_loop_thread.append(False)
            return real(*args)

        monkeypatch.setattr(accounts, name, recorded)
        return on_loop_thread

    async def test_sign_in_verifies_on_a_worker_thread(
        self, client: Client, db: AsyncSession, monkeypatch: Any
    ) -> None:
        owner = await owner_of_new_org(db)
        checks = self.spy(monkeypatch, "verify_password")
        assert (await try_login(client, owner.email, PASSWORD)).status_code == 200
        assert (await try_login(client, owner.email, "wrong password")).status_code == 401
        assert (await try_login(client, "nobody@example.test", PASSWORD)).status_code == 401
        assert checks == [False, False, False]

    async def test_sign_up_hashes_on_a_worker_thread(
        self, client: Client, monkeypatch: Any
    ) -> None:
        hashes = self.spy(monkeypatch, "hash_password")
        assert (await client.post(SIGNUP, json=signup_body())).status_code == 201
        assert hashes == [False]


class TestLockout:
    async def attempts(self, client: Client, email: str, password: str, times: int) -> list[int]:
        return [(await try_login(client, email, password)).status_code for _ in range(times)]

    async def test_account_locks_after_max_failures_even_for_the_right_password(
        self, client: Client, db: AsyncSession, clock: OffsetClock, settings: Settings
    ) -> None:
        owner = await owner_of_new_org(db)
        failures = await self.attempts(client, owner.email, "wrong", settings.login_max_failures)
        assert failures == [401] * settings.login_max_failures

        locked = await try_login(client, owner.email, PASSWORD)

        assert locked.status_code == 423
        assert locked.json()["type"] == "/problems/account-locked"
        assert 0 < int(locked.headers["retry-after"]) <= settings.login_lockout_seconds + 1

        clock.advance(settings.login_lockout_seconds)
        assert (await try_login(client, owner.email, PASSWORD)).status_code == 200

    async def test_unknown_email_locks_exactly_like_a_real_account(
        self, client: Client, db: AsyncSession, clock: OffsetClock, settings: Settings
    ) -> None:
        owner = await owner_of_new_org(db)
        ghost = f"ghost-{new_id('x')[-8:]}@example.test"
        tries = settings.login_max_failures + 2

        real = await self.attempts(client, owner.email, "wrong", tries)
        fake = await self.attempts(client, ghost, "wrong", tries)

        assert fake == real == [401] * settings.login_max_failures + [423, 423]
        for email in (owner.email, ghost):
            locked = await try_login(client, email, PASSWORD)
            assert locked.status_code == 423
            assert locked.json()["detail"] == "Too many failed sign-in attempts. Try again later."
            assert 0 < int(locked.headers["retry-after"]) <= settings.login_lockout_seconds + 1

        clock.advance(settings.login_lockout_seconds)
        assert (await try_login(client, ghost, "wrong")).status_code == 401
        assert (await try_login(client, owner.email, PASSWORD)).status_code == 200

    async def test_a_successful_login_clears_earlier_failures(
        self, client: Client, db: AsyncSession, settings: Settings
    ) -> None:
        owner = await owner_of_new_org(db)
        almost = settings.login_max_failures - 1
        await self.attempts(client, owner.email, "wrong", almost)
        assert (await try_login(client, owner.email, PASSWORD)).status_code == 200

        again = await self.attempts(client, owner.email, "wrong", almost)

        assert again == [401] * almost
        assert (await try_login(client, owner.email, PASSWORD)).status_code == 200


class TestLoginRateLimit:
    async def test_too_many_attempts_from_one_address_is_a_429(
        self, settings: Settings, clock: OffsetClock
    ) -> None:
        limited = create_app(
            settings.model_copy(update={"login_rate_per_minute": 3}),
            clock=clock,
            configure_logs=False,
        )
        async with AsyncTestClient(app=limited) as client:
            # Different emails each time: the limit is on the address, not only the account.
            first = [
                (await try_login(client, f"n{i}-{new_id('x')[-6:]}@ex.test", "pw")).status_code
                for i in range(3)
            ]
            limited_response = await try_login(client, "another@example.test", "pw")

        assert first == [401, 401, 401]
        assert limited_response.status_code == 429
        assert limited_response.json()["type"] == "/problems/rate-limited"
        assert int(limited_response.headers["retry-after"]) >= 1


class TestSignup:
    async def test_signup_creates_user_owned_org_and_default_project(self, client: Client) -> None:
        body = signup_body()

        response = await client.post(SIGNUP, json=body)

        assert response.status_code == 201, response.text
        assert "httponly" in session_cookie(response).lower()
        me = (await client.get("/api/v1/me")).json()
        assert me["user"]["email"] == body["email"]
        assert [(m["org_slug"], m["role"]) for m in me["memberships"]] == [
            (body["organization_slug"], "owner")
        ]
        assert me["current_org_id"] == me["memberships"][0]["org_id"]
        projects = (await client.get("/api/v1/projects")).json()["items"]
        assert [p["slug"] for p in projects] == ["default"]
        assert projects[0]["org_id"] == me["current_org_id"]

    async def test_signing_in_later_with_the_chosen_password_works(self, client: Client) -> None:
        body = signup_body()
        assert (await client.post(SIGNUP, json=body)).status_code == 201
        client.cookies.clear()

        assert (await try_login(client, body["email"], body["password"])).status_code == 200

    async def test_duplicate_email_is_a_409_naming_the_email(self, client: Client) -> None:
        first = signup_body()
        assert (await client.post(SIGNUP, json=first)).status_code == 201

        again = await client.post(SIGNUP, json=signup_body(email=first["email"].upper()))

        assert again.status_code == 409
        assert [e["field"] for e in again.json()["errors"]] == ["body.email"]

    async def test_taken_organization_slug_is_a_409_naming_the_slug(
        self, client: Client, db: AsyncSession
    ) -> None:
        tenant = await make_org(db, roles=())
        await db.commit()

        response = await client.post(SIGNUP, json=signup_body(organization_slug=tenant.slug))

        assert response.status_code == 409
        assert [e["field"] for e in response.json()["errors"]] == ["body.organization_slug"]
        users = await db.execute(select(User.id).where(User.email.like("founder-%")))
        assert users.first() is None  # nothing half-created

    async def test_short_password_is_refused_naming_the_field(self, client: Client) -> None:
        response = await client.post(SIGNUP, json=signup_body(password="short"))

        assert response.status_code == 400
        assert "body.password" in [e["field"] for e in response.json()["errors"]]


class TestSessions:
    async def test_logout_ends_the_session_immediately(
        self, client: Client, db: AsyncSession
    ) -> None:
        owner = await owner_of_new_org(db)
        csrf = await login(client, owner)
        token = client.cookies["cp_session"]
        assert (await client.get("/api/v1/me")).status_code == 200

        response = await client.post("/api/v1/auth/logout", headers=csrf)

        assert response.status_code == 204
        client.cookies.clear()
        replayed = await client.get("/api/v1/me", headers={"Cookie": f"cp_session={token}"})
        assert replayed.status_code == 401

    async def test_logout_needs_the_csrf_token(self, client: Client, db: AsyncSession) -> None:
        owner = await owner_of_new_org(db)
        await login(client, owner)

        response = await client.post("/api/v1/auth/logout")

        assert response.status_code == 403
        assert (await client.get("/api/v1/me")).status_code == 200

    async def test_session_expires_after_its_lifetime(
        self, client: Client, db: AsyncSession, clock: OffsetClock, settings: Settings
    ) -> None:
        owner = await owner_of_new_org(db)
        await login(client, owner)
        assert (await client.get("/api/v1/me")).status_code == 200

        clock.advance(settings.session_ttl_seconds + 1)

        response = await client.get("/api/v1/me")
        assert response.status_code == 401
        assert response.json()["type"] == "/problems/unauthenticated"


class TestCurrentOrganization:
    async def test_switching_org_changes_me_and_the_default_project_list(
        self, client: Client, db: AsyncSession
    ) -> None:
        one = await make_org(db, roles=(TenantRole.OWNER,))
        two = await make_org(db, roles=())
        user = one.accounts[TenantRole.OWNER]
        db.add(
            Membership(
                id=new_id("mem"),
                org_id=two.org_id,
                user_id=user.user_id,
                role=TenantRole.MEMBER,
                created_at=datetime.now(UTC),
            )
        )
        extra = {
            one.org_id: {one.project_id, await make_project(db, one.org_id)},
            two.org_id: {two.project_id, await make_project(db, two.org_id)},
        }
        await db.commit()
        csrf = await login(client, user)
        # A new session starts in the user's first organization (by id).
        start, target = sorted([one.org_id, two.org_id])
        assert (await client.get("/api/v1/me")).json()["current_org_id"] == start

        response = await client.post(
            "/api/v1/auth/current-org", json={"org_id": target}, headers=csrf
        )

        assert response.status_code == 204, response.text
        assert (await client.get("/api/v1/me")).json()["current_org_id"] == target
        projects = (await client.get("/api/v1/projects")).json()["items"]
        assert {p["id"] for p in projects} == extra[target]

    async def test_switching_to_a_foreign_org_is_404(
        self, client: Client, db: AsyncSession
    ) -> None:
        mine = await make_org(db, roles=(TenantRole.OWNER,))
        foreign = await make_org(db, roles=())
        await db.commit()
        csrf = await login(client, mine.accounts[TenantRole.OWNER])

        response = await client.post(
            "/api/v1/auth/current-org", json={"org_id": foreign.org_id}, headers=csrf
        )

        assert response.status_code == 404
        assert (await client.get("/api/v1/me")).json()["current_org_id"] == mine.org_id
