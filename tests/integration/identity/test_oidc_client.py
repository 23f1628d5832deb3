"""OidcClient against a real OpenID provider (npm oidc-provider), no browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import KeySet, RSAKey

from control_plane.identity.oidc import (
    AuthorizationRequest,
    OidcClient,
    OidcConfig,
    OidcError,
    OidcIdentity,
)
from tests.fixtures.peers.oidc import (
    OidcProvider,
    ProviderLoginRejectedError,
    callback_params,
    login_through_provider,
    require_oidc,
)

pytestmark = pytest.mark.peer_oidc

REDIRECT_URI = "http://127.0.0.1:8765/auth/oidc/callback"  # never requested


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    require_oidc()
    with OidcProvider(redirect_uris=[REDIRECT_URI]) as op:
        yield op


def _config(op: OidcProvider) -> OidcConfig:
    return OidcConfig(
        issuer=op.issuer,
        client_id=op.client_id,
        client_secret=op.client_secret,
        redirect_uri=REDIRECT_URI,
    )


@pytest.fixture
def seen_paths() -> list[str]:
    """Paths the OidcClient requested from the provider."""
    return []


def _recording_http(seen: list[str]) -> httpx.AsyncClient:
    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path)

    return httpx.AsyncClient(timeout=10, event_hooks={"request": [record]})


@pytest.fixture
async def client(provider: OidcProvider, seen_paths: list[str]) -> AsyncIterator[OidcClient]:
    async with _recording_http(seen_paths) as http:
        yield OidcClient(_config(provider), http)


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def _login(
    client: OidcClient, browser: httpx.AsyncClient, login: str, password: str
) -> tuple[AuthorizationRequest, dict[str, str]]:
    request = await client.authorization_request()
    url = await login_through_provider(browser, request.url, login, password)
    assert url.startswith(REDIRECT_URI)
    return request, callback_params(url)


async def test_code_flow_with_pkce_returns_the_account(
    provider: OidcProvider,
    client: OidcClient,
    browser: httpx.AsyncClient,
    seen_paths: list[str],
) -> None:
    alice = provider.account("u-alice-0001")
    request, params = await _login(client, browser, alice.email, alice.password)

    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"][0] != request.code_verifier
    assert query["state"] == [request.state]
    assert query["nonce"] == [request.nonce]
    assert "code" in params
    assert params["iss"] == provider.issuer

    identity = await client.complete(
        callback_params=params,
        expected_state=request.state,
        nonce=request.nonce,
        code_verifier=request.code_verifier,
    )
    assert identity == OidcIdentity(
        issuer=provider.issuer,
        subject="u-alice-0001",
        email="alice@example.test",
        email_verified=True,
        name="Alice Admin",
    )
    # a conformant provider keeps email and name out of a code flow's ID token
    assert seen_paths[-2:] == ["/token", "/me"]


async def test_login_by_subject_and_unverified_email(
    provider: OidcProvider, client: OidcClient, browser: httpx.AsyncClient
) -> None:
    carol = provider.account("u-carol-0003")
    request, params = await _login(client, browser, carol.sub, carol.password)
    identity = await client.complete(
        callback_params=params,
        expected_state=request.state,
        nonce=request.nonce,
        code_verifier=request.code_verifier,
    )
    assert identity.subject == carol.sub
    assert identity.email == carol.email
    assert identity.email_verified is False


async def test_wrong_state_is_rejected(
    provider: OidcProvider, client: OidcClient, browser: httpx.AsyncClient
) -> None:
    bob = provider.account("u-bob-0002")
    request, params = await _login(client, browser, bob.email, bob.password)
    other = await client.authorization_request()
    with pytest.raises(OidcError) as err:
        await client.complete(
            callback_params=params,
            expected_state=other.state,
            nonce=request.nonce,
            code_verifier=request.code_verifier,
        )
    assert err.value.reason == "state_mismatch"

    without_state = {k: v for k, v in params.items() if k != "state"}
    with pytest.raises(OidcError, match="state_mismatch"):
        await client.complete(
            callback_params=without_state,
            expected_state=request.state,
            nonce=request.nonce,
            code_verifier=request.code_verifier,
        )


async def test_tampered_nonce_is_rejected(
    provider: OidcProvider, client: OidcClient, browser: httpx.AsyncClient
) -> None:
    bob = provider.account("u-bob-0002")
    request, params = await _login(client, browser, bob.email, bob.password)
    with pytest.raises(OidcError) as err:
        await client.complete(
            callback_params=params,
            expected_state=request.state,
            nonce=request.nonce + "x",
            code_verifier=request.code_verifier,
        )
    assert err.value.reason == "id_token_invalid:nonce"


async def test_replayed_code_is_rejected(
    provider: OidcProvider, client: OidcClient, browser: httpx.AsyncClient
) -> None:
    alice = provider.account("u-alice-0001")
    request, params = await _login(client, browser, alice.email, alice.password)
    kwargs = {
        "callback_params": params,
        "expected_state": request.state,
        "nonce": request.nonce,
        "code_verifier": request.code_verifier,
    }
    first = await client.complete(**kwargs)  # type: ignore[arg-type]
    assert first.subject == alice.sub
    with pytest.raises(OidcError) as err:
        await client.complete(**kwargs)  # type: ignore[arg-type]
    assert err.value.reason == "token_error:invalid_grant"


async def test_wrong_code_verifier_is_rejected(
    provider: OidcProvider, client: OidcClient, browser: httpx.AsyncClient
) -> None:
    alice = provider.account("u-alice-0001")
    request, params = await _login(client, browser, alice.email, alice.password)
    other = await client.authorization_request()
    with pytest.raises(OidcError) as err:
        await client.complete(
            callback_params=params,
            expected_state=request.state,
            nonce=request.nonce,
            code_verifier=other.code_verifier,
        )
    assert err.value.reason == "token_error:invalid_grant"


async def test_wrong_password_produces_no_code(
    provider: OidcProvider, client: OidcClient, browser: httpx.AsyncClient
) -> None:
    alice = provider.account("u-alice-0001")
    request = await client.authorization_request()
    with pytest.raises(ProviderLoginRejectedError) as err:
        await login_through_provider(browser, request.url, alice.email, "not the password")
    assert err.value.status == 401
    assert err.value.url is not None
    assert "/interaction/" in err.value.url

    with pytest.raises(ProviderLoginRejectedError):
        await login_through_provider(browser, request.url, "nobody@example.test", "x")


async def test_provider_error_and_foreign_issuer_are_rejected(
    provider: OidcProvider, client: OidcClient
) -> None:
    request = await client.authorization_request()
    common = {
        "expected_state": request.state,
        "nonce": request.nonce,
        "code_verifier": request.code_verifier,
    }
    with pytest.raises(OidcError) as err:
        await client.complete(
            callback_params={"error": "access_denied", "state": request.state}, **common
        )
    assert err.value.reason == "provider_error:access_denied"

    with pytest.raises(OidcError) as err:
        await client.complete(
            callback_params={"error": "<script>", "state": request.state}, **common
        )
    assert err.value.reason == "provider_error:unknown"

    with pytest.raises(OidcError) as err:
        await client.complete(
            callback_params={
                "code": "abc",
                "state": request.state,
                "iss": "http://127.0.0.1:1/other",
            },
            **common,
        )
    assert err.value.reason == "issuer_mismatch"


async def test_discovery_is_cached_and_checked(provider: OidcProvider, client: OidcClient) -> None:
    first = await client.discover()
    second = await client.discover()
    assert first is second
    assert first["issuer"] == provider.issuer
    assert "S256" in first["code_challenge_methods_supported"]

    wrong = OidcConfig(
        issuer=provider.issuer + "/",
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_uri=REDIRECT_URI,
    )
    async with OidcClient(wrong) as oidc:
        with pytest.raises(OidcError) as err:
            await oidc.discover()
    assert err.value.reason == "discovery_issuer_mismatch"


async def test_secrets_stay_out_of_reprs(provider: OidcProvider, client: OidcClient) -> None:
    request = await client.authorization_request()
    assert provider.client_secret not in repr(_config(provider))
    assert request.code_verifier not in repr(request)


async def test_claims_in_the_id_token_need_no_userinfo(browser: httpx.AsyncClient) -> None:
    """A provider that puts email and name in the ID token itself."""
    require_oidc()
    seen: list[str] = []
    with OidcProvider(redirect_uris=[REDIRECT_URI], conform_id_token_claims=False) as op:
        bob = op.account("u-bob-0002")
        async with _recording_http(seen) as http:
            oidc = OidcClient(_config(op), http)
            request, params = await _login(oidc, browser, bob.email, bob.password)
            identity = await oidc.complete(
                callback_params=params,
                expected_state=request.state,
                nonce=request.nonce,
                code_verifier=request.code_verifier,
            )
    assert (identity.subject, identity.email, identity.name) == (bob.sub, bob.email, bob.name)
    assert identity.email_verified is True
    assert "/me" not in seen


async def test_unknown_kid_reloads_the_jwks_once(
    provider: OidcProvider,
    client: OidcClient,
    browser: httpx.AsyncClient,
    seen_paths: list[str],
) -> None:
    """After a key rotation the cached JWKS lacks the ID token's kid: reload it."""
    await client.discover()
    # simulate a cache from before the rotation (private attribute, on purpose)
    client._jwks = KeySet([RSAKey.generate_key(2048, parameters={"kid": "retired-key"})])
    alice = provider.account("u-alice-0001")
    request, params = await _login(client, browser, alice.email, alice.password)
    seen_paths.clear()
    identity = await client.complete(
        callback_params=params,
        expected_state=request.state,
        nonce=request.nonce,
        code_verifier=request.code_verifier,
    )
    assert identity.subject == alice.sub
    assert seen_paths.count("/jwks") == 1
