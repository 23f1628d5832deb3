"""Browser routes of OpenID Connect single sign-on: ``/auth/oidc/login`` and its callback.

The app keeps one :class:`OidcClient` (one HTTP connection pool, cached provider
metadata and keys), made on first use and closed by :func:`close_oidc_client` at
shutdown. Besides the server-side state row, the login sets a short-lived cookie holding
the ``state``: the callback must come from the browser that started the login, so a
callback URL obtained by someone else cannot sign a victim in to the wrong account.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Litestar, Request, Response, get
from litestar.params import Parameter, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound, ServiceUnavailable, Unauthenticated
from control_plane.http.problems import problem_responses
from control_plane.identity import sso
from control_plane.identity.authz import public
from control_plane.identity.controllers import client_address, set_session_cookie
from control_plane.identity.oidc import OidcClient
from control_plane.settings import Settings

STATE_COOKIE = "cp_oidc_state"
_STATE_COOKIE_PATH = "/auth/oidc"
_CLIENT_KEY = "oidc_client"
_NO_STORE = {"Cache-Control": "no-store"}

_FAILURE_DETAIL = {
    "invalid_state": "This sign-on link is invalid or was already used. Start again.",
    "expired": "The sign-on took too long. Start again.",
    "denied": "Sign-on was cancelled at the identity provider.",
    "provider_error": "The identity provider did not complete the sign-on.",
    "no_account": "No account is linked to this sign-on identity. Ask an administrator "
    "to invite you.",
}

CallbackParam = Annotated[str | None, Parameter(max_length=2048)]


def _oidc_client(request: Request[Any, Any, Any], settings: Settings, clock: Clock) -> OidcClient:
    """The app's shared client, made on first use; 404 when sign-on is not configured."""
    existing: OidcClient | None = request.app.state.get(_CLIENT_KEY)
    if existing is not None:
        return existing
    config = sso.oidc_config(settings)
    if config is None:
        raise NotFound(detail="Single sign-on is not configured.")
    client = OidcClient(config, clock=clock)
    request.app.state[_CLIENT_KEY] = client
    return client


async def close_oidc_client(app: Litestar) -> None:
    """Shutdown hook: close the shared client's connections, if one was made."""
    client: OidcClient | None = app.state.pop(_CLIENT_KEY, None)
    if client is not None:
        await client.aclose()


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _failure(request: Request[Any, Any, Any], failure: sso.SsoFailure) -> Response[Any]:
    """Browsers go back to the sign-in page with a reason code; API callers get a 401."""
    if _wants_html(request):
        query = urlencode({"error": "sso", "reason": failure.reason})
        response = Redirect(f"/login?{query}", headers=_NO_STORE)
        response.delete_cookie(STATE_COOKIE, path=_STATE_COOKIE_PATH)
        return response
    raise Unauthenticated(
        detail=_FAILURE_DETAIL.get(failure.reason, "Sign-on failed."),
        extra={"reason": failure.reason},
    )


@get(
    "/auth/oidc/login",
    opt=public(),
    tags=["auth"],
    summary="Start single sign-on",
    description="Redirects to the identity provider; 404 when single sign-on is off.",
    status_code=302,
    responses=problem_responses(404, 503),
)
async def oidc_login(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    next_path: Annotated[
        str | None,
        QueryParameter(name="next", max_length=2048, description="Local path to return to."),
    ] = None,
) -> Response[Any]:
    oidc = _oidc_client(request, settings, clock)
    try:
        url, state = await sso.begin_login(db, clock, oidc, next_path)
    except sso.SsoFailure as failure:
        if _wants_html(request):
            return _failure(request, failure)
        raise ServiceUnavailable(
            detail="The identity provider cannot be reached.", extra={"reason": failure.reason}
        ) from failure
    response = Redirect(url, headers=_NO_STORE)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(sso.LOGIN_STATE_TTL.total_seconds()),
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        path=_STATE_COOKIE_PATH,
    )
    return response


@get(
    "/auth/oidc/callback",
    opt=public(),
    tags=["auth"],
    summary="Finish single sign-on",
    description="The identity provider's redirect target: starts a session and redirects "
    "to where the sign-on began. Failures redirect browsers to `/login?error=sso&reason=…` "
    "and answer other clients with a 401 problem carrying `reason`.",
    status_code=302,
    responses=problem_responses(401, 404),
)
async def oidc_callback(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    code: CallbackParam = None,
    state_param: Annotated[
        str | None, QueryParameter(name="state", max_length=2048)
    ] = None,  # "state" is a reserved handler argument
    iss: CallbackParam = None,
    error: CallbackParam = None,
) -> Response[Any]:
    oidc = _oidc_client(request, settings, clock)
    state = state_param
    params = {
        k: v for k, v in (("code", code), ("state", state), ("iss", iss), ("error", error)) if v
    }
    try:
        if not state or not _same_browser(request, state):
            raise sso.SsoFailure("invalid_state")
        pending = await sso.consume_login_state(request.app.state.sessionmaker, clock, state)
        new = await sso.finish_login(
            db,
            clock,
            oidc,
            callback_params=params,
            pending=pending,
            state=state,
            session_ttl=settings.session_ttl_seconds,
            source=client_address(request),
        )
    except sso.SsoFailure as failure:
        return _failure(request, failure)
    response = Redirect(pending.return_to, headers=_NO_STORE)
    set_session_cookie(response, settings, new.token)
    response.delete_cookie(STATE_COOKIE, path=_STATE_COOKIE_PATH)
    return response


def _same_browser(request: Request[Any, Any, Any], state: str) -> bool:
    cookie = request.cookies.get(STATE_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), state.encode())


ROUTES = [oidc_login, oidc_callback]
