"""OpenID Connect relying party: authorization code flow with PKCE (S256).

Pure protocol code around Authlib and joserfc: no web framework, no database. The
portal keeps ``state``, ``nonce`` and ``code_verifier`` of an
:class:`AuthorizationRequest` in its session between the redirect to the provider and
the callback, then hands the callback's query parameters to :meth:`OidcClient.complete`.

Authlib pieces used: grant URI and token request encoding (RFC 6749), client
authentication ``client_secret_basic``, the PKCE S256 challenge (RFC 7636), random
tokens, and :class:`authlib.oidc.core.CodeIDToken` for the ID token claim rules (iss,
aud, exp, iat, nonce, azp, at_hash) on top of joserfc's signature check against the
provider's JWKS. The HTTP calls go through one ``httpx.AsyncClient``:
``authlib.integrations.httpx_client`` is not used because, in the installed Authlib,
importing it with ``httpx`` (rather than ``httpx2``) raises a deprecation warning, and
its client object keeps per-login token state.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from control_plane.clock import Clock

__all__ = [
    "AuthorizationRequest",
    "OidcClient",
    "OidcConfig",
    "OidcError",
    "OidcIdentity",
]

# Asymmetric signatures only: "none" and the HMAC family (keyed with the client secret)
# are never accepted for ID tokens.
_ALLOWED_ID_TOKEN_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
_REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.,\-]{1,64}$")
_FORM_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
}


@dataclass(frozen=True)
class OidcConfig:
    """One relying-party registration at one provider."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)  # kept out of logs and tracebacks
    redirect_uri: str
    scopes: str = "openid email profile"


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and what to keep server-side until the callback."""

    url: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)


@dataclass(frozen=True)
class OidcIdentity:
    """The authenticated end-user: ``(issuer, subject)`` is the stable key."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class OidcError(Exception):
    """A failed discovery or login. ``reason`` is short and safe to log or show:
    it never contains a code, a token, a secret or a provider's free text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _safe_code(value: object) -> str:
    """A provider-supplied error code, if it looks like one, else ``unknown``."""
    if isinstance(value, str) and _SAFE_CODE.match(value):
        return value
    return "unknown"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _is_verified(value: object) -> bool:
    # some providers send the string "true"
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class OidcClient:
    """Relying party for one provider. Safe to share between concurrent logins: all
    per-login state lives in :class:`AuthorizationRequest`, held by the caller.

    ``http`` is used for every call (discovery, JWKS, token, userinfo). When omitted,
    the client makes its own and :meth:`aclose` closes it; a given client stays the
    caller's to close.
    """

    def __init__(
        self,
        config: OidcConfig,
        http: httpx.AsyncClient | None = None,
        *,
        clock: Clock | None = None,
        leeway_seconds: int = 60,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._config = config
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout_seconds)
        self._clock = clock or Clock()
        self._leeway = leeway_seconds
        self._metadata: dict[str, Any] | None = None
        self._jwks: KeySet | None = None
        self._lock = asyncio.Lock()
        self._client_auth = ClientAuth(
            config.client_id, config.client_secret, "client_secret_basic"
        )

    @property
    def config(self) -> OidcConfig:
        return self._config

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> OidcClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- discovery ---------------------------------------------------------------------

    async def discover(self) -> dict[str, Any]:
        """Provider metadata (OpenID Connect Discovery 1.0), fetched once and cached,
        with the JWKS loaded alongside. The metadata's ``issuer`` must equal the
        configured issuer exactly."""
        if self._metadata is not None and self._jwks is not None:
            return self._metadata
        async with self._lock:
            if self._metadata is None:
                self._metadata = await self._fetch_metadata()
            if self._jwks is None:
                self._jwks = await self._fetch_jwks(self._metadata)
            return self._metadata

    async def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise OidcError(f"{what}_unreachable") from exc
        if response.status_code != 200:
            raise OidcError(f"{what}_http_{response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise OidcError(f"{what}_not_json") from exc
        if not isinstance(data, dict):
            raise OidcError(f"{what}_not_json")
        return cast(dict[str, Any], data)

    async def _fetch_metadata(self) -> dict[str, Any]:
        url = self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        metadata = await self._get_json(url, "discovery")
        for key in _REQUIRED_METADATA:
            if not isinstance(metadata.get(key), str) or not metadata[key]:
                raise OidcError(f"discovery_missing_{key}")
        if metadata["issuer"] != self._config.issuer:
            raise OidcError("discovery_issuer_mismatch")
        methods = metadata.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "client_secret_basic" not in methods:
            raise OidcError("discovery_no_client_secret_basic")
        pkce = metadata.get("code_challenge_methods_supported")
        if isinstance(pkce, list) and "S256" not in pkce:
            raise OidcError("discovery_no_pkce_s256")
        return metadata

    async def _fetch_jwks(self, metadata: Mapping[str, Any]) -> KeySet:
        data = await self._get_json(str(metadata["jwks_uri"]), "jwks")
        try:
            return KeySet.import_key_set(cast(Any, data))
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise OidcError("jwks_invalid") from exc

    async def _refresh_jwks(self) -> KeySet:
        metadata = await self.discover()
        async with self._lock:
            self._jwks = await self._fetch_jwks(metadata)
            return self._jwks

    # -- the flow ----------------------------------------------------------------------

    async def authorization_request(self) -> AuthorizationRequest:
        """A fresh authorization URL with random ``state`` and ``nonce`` and a PKCE
        S256 challenge; keep the returned secrets server-side for :meth:`complete`."""
        metadata = await self.discover()
        state = generate_token(43)
        nonce = generate_token(43)
        code_verifier = generate_token(64)  # RFC 7636: 43..128 unreserved characters
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            client_id=self._config.client_id,
            response_type="code",
            redirect_uri=self._config.redirect_uri,
            scope=self._config.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return AuthorizationRequest(
            url=str(url), state=state, nonce=nonce, code_verifier=code_verifier
        )

    async def complete(
        self,
        *,
        callback_params: Mapping[str, str],
        expected_state: str,
        nonce: str,
        code_verifier: str,
    ) -> OidcIdentity:
        """Finish a login from the redirect URI's query parameters.

        Checks ``state`` (constant time), the provider's ``error`` and ``iss``
        (RFC 9207) parameters, exchanges the code (client_secret_basic + PKCE
        verifier), verifies the ID token's signature against the JWKS and its claims
        (iss, aud, exp, iat, nonce, azp, at_hash), and reads email and name from the ID
        token or, when it lacks them, from the userinfo endpoint.
        Raises :class:`OidcError` on any failure."""
        if not expected_state or not nonce or not code_verifier:
            raise OidcError("missing_login_session")
        state = callback_params.get("state")
        if not isinstance(state, str) or not _same(state, expected_state):
            raise OidcError("state_mismatch")
        if "error" in callback_params:
            raise OidcError(f"provider_error:{_safe_code(callback_params.get('error'))}")

        metadata = await self.discover()
        iss = callback_params.get("iss")
        if iss is not None:
            if iss != self._config.issuer:
                raise OidcError("issuer_mismatch")
        elif metadata.get("authorization_response_iss_parameter_supported") is True:
            raise OidcError("issuer_missing")

        code = callback_params.get("code")
        if not isinstance(code, str) or not code:
            raise OidcError("code_missing")

        tokens = await self._exchange_code(metadata, code, code_verifier)
        access_token = tokens["access_token"]
        claims = await self._validate_id_token(tokens["id_token"], nonce, access_token)

        if claims.get("email") is None and isinstance(metadata.get("userinfo_endpoint"), str):
            claims = await self._merge_userinfo(metadata, claims, access_token)

        return OidcIdentity(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=_optional_str(claims.get("email")),
            email_verified=_is_verified(claims.get("email_verified")),
            name=_optional_str(claims.get("name")),
        )

    async def _exchange_code(
        self, metadata: Mapping[str, Any], code: str, code_verifier: str
    ) -> dict[str, str]:
        url = str(metadata["token_endpoint"])
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self._config.redirect_uri,
            code_verifier=code_verifier,
        )
        url, headers, body = self._client_auth.prepare("POST", url, dict(_FORM_HEADERS), body)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise OidcError("token_endpoint_unreachable") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OidcError(f"token_endpoint_http_{response.status_code}")
        if "error" in data or response.status_code != 200:
            raise OidcError(f"token_error:{_safe_code(data.get('error'))}")
        id_token = data.get("id_token")
        access_token = data.get("access_token")
        token_type = data.get("token_type")
        if not isinstance(id_token, str) or not id_token:
            raise OidcError("id_token_missing")
        if not isinstance(access_token, str) or not access_token:
            raise OidcError("access_token_missing")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise OidcError("token_type_unsupported")
        return {"id_token": id_token, "access_token": access_token}

    def _id_token_algorithms(self, metadata: Mapping[str, Any]) -> list[str]:
        offered = metadata.get("id_token_signing_alg_values_supported")
        if not isinstance(offered, list):
            return ["RS256"]
        algs = [a for a in offered if isinstance(a, str) and a in _ALLOWED_ID_TOKEN_ALGS]
        if not algs:
            raise OidcError("id_token_no_usable_alg")
        return algs

    async def _validate_id_token(
        self, id_token: str, nonce: str, access_token: str
    ) -> dict[str, Any]:
        metadata = await self.discover()
        algorithms = self._id_token_algorithms(metadata)
        keys = self._jwks if self._jwks is not None else await self._refresh_jwks()
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            except InvalidKeyIdError:
                # the provider may have rotated its keys: reload the JWKS once
                keys = await self._refresh_jwks()
                token = jwt.decode(id_token, keys, algorithms=algorithms)
        except InvalidKeyIdError as exc:
            raise OidcError("id_token_unknown_key") from exc
        except (JoseError, ValueError) as exc:
            raise OidcError("id_token_bad_signature") from exc

        claims = CodeIDToken(
            token.claims,
            token.header,
            options={
                "iss": {"essential": True, "value": self._config.issuer},
                "aud": {"essential": True, "value": self._config.client_id},
                "sub": {"essential": True},
            },
            params={
                "nonce": nonce,
                "client_id": self._config.client_id,
                "access_token": access_token,
            },
        )
        now = int(self._clock.now().timestamp())
        try:
            claims.validate(now=now, leeway=self._leeway)
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or "claims"
            raise OidcError(f"id_token_invalid:{_safe_code(claim)}") from exc
        aud = token.claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and token.claims.get("azp") is None:
            # several audiences: azp must name us (OIDC Core 3.1.3.7 step 4-5)
            raise OidcError("id_token_invalid:azp")
        # the nonce is mandatory here: CodeIDToken only compares it when present
        token_nonce = token.claims.get("nonce")
        if not isinstance(token_nonce, str) or not _same(token_nonce, nonce):
            raise OidcError("id_token_invalid:nonce")
        return dict(token.claims)

    async def _merge_userinfo(
        self, metadata: Mapping[str, Any], claims: dict[str, Any], access_token: str
    ) -> dict[str, Any]:
        info = await self._get_json(
            str(metadata["userinfo_endpoint"]),
            "userinfo",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        # OIDC Core 5.3.2: the userinfo sub must be the ID token's sub
        if info.get("sub") != claims["sub"]:
            raise OidcError("userinfo_subject_mismatch")
        merged = dict(claims)
        for key in ("email", "email_verified", "name"):
            if merged.get(key) is None and key in info:
                merged[key] = info[key]
        return merged
