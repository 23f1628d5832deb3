"""Single sign-on with OpenID Connect: start a login, finish it, map it to a local user.

The protocol lives in :mod:`control_plane.identity.oidc`; this module keeps a login's
``state``, ``nonce`` and PKCE verifier in ``oidc_login_state`` between the redirect to
the provider and the callback, and turns the provider's answer into a web session.

No call to the provider happens inside a database transaction: the state row is
consumed (read and deleted, committed) in its own short session before the code
exchange, and the user mapping runs afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.errors import Unauthenticated
from control_plane.identity import accounts
from control_plane.identity.models import OidcLoginState
from control_plane.identity.oidc import OidcClient, OidcConfig, OidcError
from control_plane.settings import Settings

log = structlog.get_logger("control_plane.sso")

CALLBACK_PATH = "/auth/oidc/callback"
DEFAULT_RETURN_TO = "/dashboard"
LOGIN_STATE_TTL = timedelta(minutes=10)
_MAX_RETURN_TO = 500  # the oidc_login_state.return_to column


class SsoFailure(Exception):
    """A sign-on that ends without a session. ``reason`` is a short code safe to show:
    ``not_configured``, ``invalid_state``, ``expired``, ``denied``, ``provider_error``
    or ``no_account``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PendingLogin:
    """What the callback needs from the login that started it."""

    nonce: str
    code_verifier: str
    return_to: str


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The relying-party registration, or ``None`` when single sign-on is off."""
    if not settings.oidc_issuer:
        return None
    return OidcConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        redirect_uri=settings.base_url + CALLBACK_PATH,
    )


def safe_return_to(candidate: str | None) -> str:
    """A local path to land on after sign-on; anything else becomes the dashboard."""
    if not candidate or len(candidate) > _MAX_RETURN_TO:
        return DEFAULT_RETURN_TO
    # "//host" and "/\host" are treated as other origins by browsers
    if not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return DEFAULT_RETURN_TO
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in candidate):
        return DEFAULT_RETURN_TO
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return DEFAULT_RETURN_TO
    return candidate


async def begin_login(
    db: AsyncSession, clock: Clock, oidc: OidcClient, return_to: str | None
) -> tuple[str, str]:
    """Record a login in flight; returns ``(provider URL, state)``.

    The provider is asked for its metadata (cached after the first login) before the
    database is touched, so no transaction is open during that call."""
    try:
        request = await oidc.authorization_request()
    except OidcError as exc:
        log.warning("sso login could not start", reason=exc.reason)
        raise SsoFailure("provider_error") from exc
    now = clock.now()
    await db.execute(delete(OidcLoginState).where(OidcLoginState.expires_at < now))
    db.add(
        OidcLoginState(
            state=request.state,
            nonce=request.nonce,
            code_verifier=request.code_verifier,
            return_to=safe_return_to(return_to),
            expires_at=now + LOGIN_STATE_TTL,
        )
    )
    return request.url, request.state


async def consume_login_state(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, state: str
) -> PendingLogin:
    """Read and delete a login's state in a transaction of its own (committed before the
    provider is called), so a callback URL works at most once, even when replayed
    concurrently."""
    async with sessionmaker() as db, db.begin():
        row = await db.get(OidcLoginState, state)
        if row is None:
            raise SsoFailure("invalid_state")
        pending = PendingLogin(row.nonce, row.code_verifier, row.return_to)
        expired = row.expires_at <= clock.now()
        deleted = await db.execute(
            delete(OidcLoginState)
            .where(OidcLoginState.state == state)
            .returning(OidcLoginState.state)
        )
        if deleted.first() is None:  # a concurrent callback took it first
            raise SsoFailure("invalid_state")
    if expired:
        raise SsoFailure("expired")
    return pending


def _reason(error: OidcError) -> str:
    if error.reason == "state_mismatch":
        return "invalid_state"
    if error.reason == "provider_error:access_denied":
        return "denied"
    return "provider_error"


async def finish_login(
    db: AsyncSession,
    clock: Clock,
    oidc: OidcClient,
    *,
    callback_params: dict[str, str],
    pending: PendingLogin,
    state: str,
    session_ttl: int,
    source: str | None,
) -> accounts.NewSession:
    """Exchange the code, check the ID token and start a session for the mapped user.

    The exchange runs before ``db`` is used, so no transaction is open during it."""
    try:
        identity = await oidc.complete(
            callback_params=callback_params,
            expected_state=state,
            nonce=pending.nonce,
            code_verifier=pending.code_verifier,
        )
    except OidcError as exc:
        log.warning("sso login failed", reason=exc.reason)
        raise SsoFailure(_reason(exc)) from exc
    try:
        user = await accounts.user_for_sso(
            db,
            clock,
            identity.issuer,
            identity.subject,
            identity.email,
            identity.email_verified,
        )
    except Unauthenticated as exc:
        log.info(
            "sso login without a local account",
            issuer=identity.issuer,
            email_verified=identity.email_verified,
        )
        raise SsoFailure("no_account") from exc
    await db.flush()
    new = await accounts.start_session(db, clock, user, "oidc", session_ttl, source)
    log.info("sso login", user_id=user.id, issuer=identity.issuer)
    return new
