"""Single sign-on through the app against a real OpenID provider (npm oidc-provider)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.models import OidcIdentityLink, OidcLoginState, User, WebSession
from control_plane.identity.sso_controllers import STATE_COOKIE, close_oidc_client
from control_plane.settings import Settings
from tests.fixtures.factories import make_user
from tests.fixtures.peers.oidc import (
    OidcAccount,
    OidcProvider,
    callback_params,
    login_through_provider,
    require_oidc,
)

BASE_URL = "http://127.0.0.1"  # what the AsyncTestClient calls the app
CALLBACK = f"{BASE_URL}/auth/oidc/callback"
HTML = {"Accept": "text/html,application/xhtml+xml"}
ALICE = "u-alice-0001"
BOB = "u-bob-0002"  # no local account in these tests
CAROL = "u-carol-0003"  # email not verified at the provider


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    require_oidc()
    with OidcProvider(redirect_uris=[CALLBACK]) as op:
        yield op


@pytest.fixture
def settings(database_url: str, provider: OidcProvider) -> Settings:
    return Settings(
        database_url=database_url,
        environment="test",
        cookie_secure=False,
        login_rate_per_minute=1000,
        public_url=BASE_URL,
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
    )


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The user's browser as the provider sees it (keeps the provider's cookies)."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def start_login(client: AsyncTestClient[Litestar], next_path: str | None = None) -> str:
    """``GET /auth/oidc/login``; returns where the app sends the browser."""
    params = {"next": next_path} if next_path is not None else None
    response = await client.get("/auth/oidc/login", params=params, follow_redirects=False)
    assert response.status_code == 302, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.headers["location"]


async def provider_callback(
    client: AsyncTestClient[Litestar],
    browser: httpx.AsyncClient,
    account: OidcAccount,
    next_path: str | None = None,
) -> str:
    """Start a login at the app and sign in at the provider; returns the callback URL."""
    location = await start_login(client, next_path)
    callback = await login_through_provider(browser, location, account.email, account.password)
    assert callback.startswith(CALLBACK + "?")
    return callback


async def sign_on(
    client: AsyncTestClient[Litestar],
    browser: httpx.AsyncClient,
    account: OidcAccount,
    next_path: str | None = None,
    **headers: str,
) -> httpx.Response:
    callback = await provider_callback(client, browser, account, next_path)
    return await client.get(callback, headers=headers, follow_redirects=False)


async def scalar(db: AsyncSession, statement: Any) -> Any:
    """One value, read in a fresh transaction (the app commits in other sessions)."""
    value = (await db.execute(statement)).scalar()
    await db.commit()
    return value


def assert_problem(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["reason"] == reason
    assert "cp_session" not in response.cookies


@pytest.mark.peer_oidc
class TestSignOn:
    async def test_sign_on_starts_a_session_and_returns_to_the_page(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        db: AsyncSession,
        provider: OidcProvider,
    ) -> None:
        alice = provider.account(ALICE)
        local = await make_user(db, alice.email)
        await db.commit()

        response = await sign_on(client, browser, alice, "/projects?tab=gpus")

        assert response.status_code == 302, response.text
        assert response.headers["location"] == "/projects?tab=gpus"
        assert response.cookies.get("cp_session")
        me = await client.get("/api/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["user"]["id"] == local.user_id
        assert me.json()["user"]["email"] == alice.email
        method = await scalar(db, select(WebSession.auth_method))
        assert method == "oidc"
        linked = await scalar(
            db, select(OidcIdentityLink.user_id).where(OidcIdentityLink.subject == ALICE)
        )
        assert linked == local.user_id
        assert await scalar(db, select(func.count()).select_from(OidcLoginState)) == 0

    async def test_login_redirects_to_the_provider_with_pkce(
        self, client: AsyncTestClient[Litestar], provider: OidcProvider
    ) -> None:
        location = await start_login(client)

        parts = urlsplit(location)
        query = parse_qs(parts.query)
        assert f"{parts.scheme}://{parts.netloc}" == provider.issuer
        assert query["redirect_uri"] == [CALLBACK]
        assert query["client_id"] == [provider.client_id]
        assert query["code_challenge_method"] == ["S256"]
        assert client.cookies.get(STATE_COOKIE) == query["state"][0]

    @pytest.mark.parametrize(
        "next_path",
        [
            None,
            "https://evil.example/phish",
            "//evil.example/phish",
            "/\\evil.example",
            "dashboard",
            "/ok\r\nSet-Cookie: x=1",
            "/" + "a" * 600,
        ],
    )
    async def test_unsafe_return_paths_land_on_the_dashboard(
        self, client: AsyncTestClient[Litestar], db: AsyncSession, next_path: str | None
    ) -> None:
        await start_login(client, next_path)

        assert await scalar(db, select(OidcLoginState.return_to)) == "/dashboard"


@pytest.mark.peer_oidc
class TestCallbackRejections:
    async def test_replayed_callback_is_rejected(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        db: AsyncSession,
        provider: OidcProvider,
    ) -> None:
        alice = provider.account(ALICE)
        await make_user(db, alice.email)
        await db.commit()
        callback = await provider_callback(client, browser, alice)
        first = await client.get(callback, follow_redirects=False)
        assert first.status_code == 302

        # even someone holding the state cookie as well cannot use the URL again
        client.cookies.clear()
        client.cookies.set(STATE_COOKIE, callback_params(callback)["state"], path="/auth/oidc")
        replay = await client.get(callback, follow_redirects=False)

        assert_problem(replay, 401, "invalid_state")
        assert await scalar(db, select(func.count()).select_from(WebSession)) == 1

    async def test_unknown_state_is_rejected(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        provider: OidcProvider,
    ) -> None:
        callback = await provider_callback(client, browser, provider.account(ALICE))
        params = callback_params(callback) | {"state": "not-a-state-we-issued"}
        client.cookies.clear()
        client.cookies.set(STATE_COOKIE, params["state"], path="/auth/oidc")

        response = await client.get(f"{CALLBACK}?{urlencode(params)}", follow_redirects=False)

        assert_problem(response, 401, "invalid_state")

    async def test_callback_from_another_browser_signs_nobody_in(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        db: AsyncSession,
        provider: OidcProvider,
    ) -> None:
        """Login CSRF: a callback URL made by someone else does not log a victim in."""
        alice = provider.account(ALICE)
        await make_user(db, alice.email)
        await db.commit()
        callback = await provider_callback(client, browser, alice)

        starter = httpx.Cookies(client.cookies)
        client.cookies.clear()  # now the victim's browser
        response = await client.get(callback, follow_redirects=False)
        assert_problem(response, 401, "invalid_state")

        # the browser that started the login still completes it
        client.cookies = starter
        own = await client.get(callback, follow_redirects=False)
        assert own.status_code == 302
        assert own.cookies.get("cp_session")

    async def test_browsers_return_to_the_sign_in_page_with_a_reason(
        self, client: AsyncTestClient[Litestar], browser: httpx.AsyncClient, provider: OidcProvider
    ) -> None:
        callback = await provider_callback(client, browser, provider.account(ALICE))
        client.cookies.clear()

        response = await client.get(callback, headers=HTML, follow_redirects=False)

        assert response.status_code == 302
        assert response.headers["location"] == "/login?error=sso&reason=invalid_state"
        assert "cp_session" not in response.cookies

    async def test_login_older_than_ten_minutes_is_rejected(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        db: AsyncSession,
        clock: OffsetClock,
        provider: OidcProvider,
    ) -> None:
        alice = provider.account(ALICE)
        await make_user(db, alice.email)
        await db.commit()
        callback = await provider_callback(client, browser, alice)
        clock.advance(10 * 60 + 1)

        response = await client.get(callback, follow_redirects=False)

        assert_problem(response, 401, "expired")
        assert await scalar(db, select(func.count()).select_from(OidcLoginState)) == 0

    async def test_cancelled_sign_on_is_reported_as_denied(
        self, client: AsyncTestClient[Litestar]
    ) -> None:
        location = await start_login(client)
        state = parse_qs(urlsplit(location).query)["state"][0]
        params = {"error": "access_denied", "state": state}

        response = await client.get(
            f"{CALLBACK}?{urlencode(params)}", headers=HTML, follow_redirects=False
        )

        assert response.headers["location"] == "/login?error=sso&reason=denied"

    async def test_unverified_email_gets_no_session(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        db: AsyncSession,
        provider: OidcProvider,
    ) -> None:
        carol = provider.account(CAROL)
        assert carol.email_verified is False
        await make_user(db, carol.email)
        await db.commit()

        response = await sign_on(client, browser, carol)

        assert_problem(response, 401, "no_account")
        assert (await client.get("/api/v1/me")).status_code == 401
        assert await scalar(db, select(func.count()).select_from(OidcIdentityLink)) == 0

    async def test_provider_user_without_local_account_gets_no_session(
        self,
        client: AsyncTestClient[Litestar],
        browser: httpx.AsyncClient,
        db: AsyncSession,
        provider: OidcProvider,
    ) -> None:
        response = await sign_on(client, browser, provider.account(BOB), **HTML)

        assert response.status_code == 302
        assert response.headers["location"] == "/login?error=sso&reason=no_account"
        assert "cp_session" not in response.cookies
        assert await scalar(db, select(func.count()).select_from(User)) == 0
        assert await scalar(db, select(func.count()).select_from(WebSession)) == 0


DAVE = OidcAccount("u-dave-0004", "dave@example.test", "Dave Mover", "dave password 4")


@pytest.mark.peer_oidc
class TestIdentityLink:
    @pytest.fixture
    def provider(self) -> Iterator[OidcProvider]:
        require_oidc()
        with OidcProvider(redirect_uris=[CALLBACK], accounts=[DAVE]) as op:
            yield op

    async def test_second_sign_on_follows_the_link_after_the_email_changed(
        self,
        app: Litestar,
        client: AsyncTestClient[Litestar],
        db: AsyncSession,
        provider: OidcProvider,
    ) -> None:
        dave = await make_user(db, DAVE.email)
        eve = await make_user(db, "eve@example.test")
        await db.commit()
        async with httpx.AsyncClient(timeout=10) as browser:
            assert (await sign_on(client, browser, DAVE)).status_code == 302

        # At the provider, Dave's address becomes one that a different local user has.
        # The launcher fixes accounts at start: restart it on the same issuer URL. It
        # signs with a fresh key under the same key id, so drop the app's cached keys.
        provider.stop()
        moved = replace(DAVE, email="eve@example.test")
        with OidcProvider(
            redirect_uris=[CALLBACK],
            accounts=[moved],
            port=provider.port,
            client_secret=provider.client_secret,
        ) as restarted:
            assert restarted.issuer == provider.issuer
            await close_oidc_client(app)
            client.cookies.clear()
            async with httpx.AsyncClient(timeout=10) as browser:
                response = await sign_on(client, browser, moved)

        assert response.status_code == 302, response.text
        me = (await client.get("/api/v1/me")).json()
        assert me["user"]["id"] == dave.user_id != eve.user_id
        assert me["user"]["email"] == DAVE.email
        assert await scalar(db, select(func.count()).select_from(OidcIdentityLink)) == 1


class TestSsoNotConfigured:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return Settings(database_url=database_url, environment="test", cookie_secure=False)

    @pytest.mark.parametrize("path", ["/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"])
    async def test_sso_routes_answer_not_found(
        self, client: AsyncTestClient[Litestar], path: str
    ) -> None:
        response = await client.get(path, follow_redirects=False)

        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"] == "Single sign-on is not configured."
