"""Signing in and out, and switching the current organization."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Locked, TooManyRequests, Unauthenticated
from control_plane.identity import accounts
from control_plane.identity.authentication import SESSION_COOKIE, Authenticator
from control_plane.identity.authz import (
    LOGIN_CSRF_COOKIE,
    authenticate,
    authenticated,
    public,
)
from control_plane.identity.controllers import (
    check_login_rate,
    client_address,
    login_policy,
    set_session_cookie,
)
from control_plane.identity.principal import Principal
from control_plane.identity.schemas import LoginRequest
from control_plane.settings import Settings
from portal.forms import FormState, convert, discard, read_form, safe_next
from portal.templating import shell_context

NextParam = Annotated[str | None, QueryParameter(name="next", max_length=2000)]
_LOGIN_CSRF_TTL = 3600
_MISSING = {"email": "Enter your email address.", "password": "Enter your password."}
_BAD = {"email": "Enter an email address like name@example.com.", "password": "Too long."}


def _see_other(path: str) -> Redirect:
    return Redirect(path=path, status_code=HTTP_303_SEE_OTHER)


@get("/", opt=public(), name="portal:home")
async def home(request: Request[Any, Any, Any]) -> Redirect:
    """Signed in: the dashboard; otherwise the sign-in form."""
    principal = await _signed_in(request)
    return _see_other("/dashboard" if principal else "/login")


async def _signed_in(request: Request[Any, Any, Any]) -> Principal | None:
    """Public routes skip authentication; these pages still want to know who is there."""
    try:
        return await authenticate(request)
    except Unauthenticated:
        return None


@get("/login", opt=public(), name="portal:login")
async def login_form(
    request: Request[Any, Any, Any],
    settings: Settings,
    next_path: NextParam = None,
    signed_out: Annotated[bool, QueryParameter(name="signed_out")] = False,
    error: Annotated[str | None, QueryParameter(name="error", max_length=20)] = None,
    reason: Annotated[str | None, QueryParameter(name="reason", max_length=40)] = None,
) -> Response[Any]:
    if await _signed_in(request):
        return _see_other(safe_next(next_path))
    notice = "You have signed out." if signed_out else ""
    form = FormState(values={"next": next_path or ""})
    if error == "sso":
        form.message = SSO_FAILURES.get(reason or "", SSO_FAILURES["provider_error"])
    return _login_page(request, settings, form, notice)


# What the SSO callback's reason codes mean to the person who just tried to sign in.
SSO_FAILURES = {
    "invalid_state": "That sign-on link was already used or does not belong to this browser. "
    "Start again.",
    "expired": "The sign-on took too long. Start again.",
    "denied": "The identity provider did not sign you in.",
    "provider_error": "Single sign-on failed at the identity provider. Try again.",
    "no_account": "No account here matches that identity. Ask an administrator to invite you.",
}


def _login_page(
    request: Request[Any, Any, Any],
    settings: Settings,
    form: FormState,
    notice: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    """The form, with a fresh double-submit CSRF token unless the browser already holds one."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    next_path = safe_next(form.values.get("next"))
    sso_url = ""
    if settings.oidc_issuer:
        sso_url = "/auth/oidc/login?" + urlencode({"next": next_path})
    context = shell_context(request, None)
    context.update(
        page_title="Sign in",
        form=form,
        login_csrf=token,
        next_path=next_path,
        notice=notice,
        sso_url=sso_url,
        sso_name=settings.oidc_display_name,
    )
    response = Template(
        template_name="auth/login.html",
        context=context,
        status_code=status_code,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=_LOGIN_CSRF_TTL,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
        path="/",
    )
    return response


@post("/login", opt=public(csrf=True), name="portal:login-submit")
async def login_submit(
    request: Request[Any, Any, Any], db: AsyncSession, clock: Clock, settings: Settings
) -> Response[Any]:
    form = await read_form(request, ["email", "next"])
    raw_password = (await request.form()).get("password")
    password = raw_password if isinstance(raw_password, str) else ""
    for name, given in (("email", form.values["email"]), ("password", password)):
        if not given:
            form.errors[name] = _MISSING[name]
    if not form.errors:
        # The API's own schema: a malformed email is named before any lookup or counting.
        convert(form, LoginRequest, {"email": form.values["email"], "password": password}, _BAD)
    if form.errors:
        form.message = "Check the highlighted fields."
        return _login_page(request, settings, form, status_code=400)
    try:
        check_login_rate(request, form.values["email"])
        new = await accounts.password_login(
            db,
            clock,
            login_policy(settings),
            form.values["email"],
            password,
            client_address(request),
        )
    except (Unauthenticated, Locked, TooManyRequests) as problem:
        await discard(db, problem)
        form.message = problem.detail
        return _login_page(
            request, settings, form, status_code=problem.status, headers=dict(problem.headers)
        )
    response = _see_other(safe_next(form.values["next"]))
    set_session_cookie(response, settings, new.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@post("/logout", opt=authenticated(), name="portal:logout")
async def logout(
    request: Request[Any, Any, Any], principal: Principal, db: AsyncSession
) -> Redirect:
    if principal.session_id:
        await accounts.end_session(db, principal.session_id, principal.user_id)
        authenticator: Authenticator = request.app.state.authenticator
        authenticator.forget_session(principal.session_id)
    response = _see_other("/login?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@post("/orgs/switch", opt=authenticated(), name="portal:switch-org")
async def switch_org(
    request: Request[Any, Any, Any], principal: Principal, db: AsyncSession
) -> Redirect:
    form = await read_form(request, ["org_id", "next"])
    await accounts.switch_org(db, principal, form.values["org_id"])
    if principal.session_id:
        authenticator: Authenticator = request.app.state.authenticator
        authenticator.forget_session(principal.session_id)
    target = safe_next(form.values["next"])
    # A project page belongs to the previous organization: land on the list instead.
    if target.startswith("/projects/"):
        target = "/projects"
    return _see_other(target)


ROUTES = [home, login_form, login_submit, logout, switch_org]
