"""The one authorization layer. Every route declares its access; this guard decides.

Routes declare access with :func:`public`, :func:`authenticated`, :func:`tenant` or
:func:`provider` in their ``opt``. A route without a declaration is refused (fail closed),
and the app factory refuses to start with one.

Tenant data is reached only through a :class:`TenantScope`, which only this module can
build: repositories filter with it, so a query cannot forget the tenant. Statements built
once (hot reads, with their values bound at each execution) filter on a bound
organization id that the repository takes only after :meth:`TenantScope.require` accepted
it, in the same function (and on the project of a project's API key).
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from control_plane.db.filters import one_of
from control_plane.errors import Forbidden, NotFound, Unauthenticated
from control_plane.identity.authentication import SESSION_COOKIE, Authenticator
from control_plane.identity.principal import Principal
from control_plane.identity.roles import (
    Permission,
    ProviderPermission,
    TenantRole,
    provider_allows,
    tenant_allows,
)

ACCESS_KEY = "access"
CSRF_HEADER = "x-csrf-token"
CSRF_FORM_FIELD = "_csrf"
LOGIN_CSRF_COOKIE = "cp_csrf"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCOPE_TOKEN = object()


@dataclass(frozen=True)
class Access:
    """What a route requires. Exactly one of the flags/permissions applies."""

    public: bool = False
    node_agent: bool = False  # a node agent's credential (``cpn_...``), nothing else
    permission: Permission | None = None
    provider_permission: ProviderPermission | None = None
    csrf: bool = True

    @property
    def label(self) -> str:
        if self.public:
            return "public"
        if self.node_agent:
            return "node-agent"
        if self.permission:
            return f"tenant:{self.permission}"
        if self.provider_permission:
            return f"provider:{self.provider_permission}"
        return "authenticated"


def public(*, csrf: bool = False) -> dict[str, Any]:
    return {ACCESS_KEY: Access(public=True, csrf=csrf)}


def node_agent() -> dict[str, Any]:
    """Routes only a GPU node's agent calls, with its per-node credential (checked by the
    ``node_authenticator`` the composition root puts in the app state)."""
    return {ACCESS_KEY: Access(node_agent=True, csrf=False)}


def authenticated() -> dict[str, Any]:
    return {ACCESS_KEY: Access()}


def tenant(permission: Permission) -> dict[str, Any]:
    return {ACCESS_KEY: Access(permission=permission)}


def provider(permission: ProviderPermission) -> dict[str, Any]:
    return {ACCESS_KEY: Access(provider_permission=permission)}


class TenantScope:
    """The organizations (and, for API keys, the project) a caller may touch for one permission."""

    __slots__ = ("_roles", "permission", "principal")

    def __init__(self, token: object, principal: Principal, permission: Permission) -> None:
        if token is not _SCOPE_TOKEN:
            raise TypeError("only the authorization layer builds a TenantScope")
        self.principal = principal
        self.permission = permission
        self._roles = dict(principal.memberships)

    @property
    def visible_org_ids(self) -> frozenset[str]:
        """Organizations whose existence the caller may learn about."""
        return frozenset(self._roles)

    @property
    def permitted_org_ids(self) -> frozenset[str]:
        return frozenset(org for org in self._roles if self.allows(org, self.permission))

    @property
    def project_id(self) -> str | None:
        """Set for API keys, which act inside one project."""
        return self.principal.project_id

    def role_in(self, org_id: str) -> TenantRole | None:
        return self._roles.get(org_id)

    def allows(self, org_id: str, permission: Permission) -> bool:
        role = self._roles.get(org_id)
        if role is None or not tenant_allows(role, permission):
            return False
        scopes = self.principal.scopes
        return scopes is None or permission in scopes

    def require(self, org_id: str, permission: Permission | None = None) -> None:
        """404 when the org is not visible to the caller, 403 when visible but not permitted."""
        if org_id not in self._roles:
            raise NotFound(detail="No such resource.")
        if not self.allows(org_id, permission or self.permission):
            raise Forbidden(detail=f"Your role does not grant {permission or self.permission}.")

    def org_filter(self, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """SQL filter restricting ``column`` to organizations this scope permits."""
        return one_of(column, self.permitted_org_ids)

    def visible_filter(self, column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
        """SQL filter restricting ``column`` to organizations the caller belongs to."""
        return one_of(column, self.visible_org_ids)

    def project_filter(
        self, column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None]
    ) -> ColumnElement[bool] | None:
        """Extra filter for API keys, which see only their own project."""
        return column == self.project_id if self.project_id else None

    def resolve_org(self, requested: str | None) -> str:
        """The org a list or create acts on: the one asked for, else the caller's default."""
        org_id = requested or self.principal.default_org_id
        if org_id is None:
            raise NotFound(detail="You are not a member of any organization.")
        self.require(org_id)
        return org_id


class ProviderScope:
    """A provider staff member's reach: home jurisdiction for operators, everywhere for admins."""

    __slots__ = ("permission", "principal")

    def __init__(self, token: object, principal: Principal, permission: ProviderPermission) -> None:
        if token is not _SCOPE_TOKEN:
            raise TypeError("only the authorization layer builds a ProviderScope")
        self.principal = principal
        self.permission = permission

    @property
    def unrestricted(self) -> bool:
        return self.principal.provider_role is not None and self.principal.provider_role.value == (
            "operator-admin"
        )

    def may_act_in(self, jurisdiction: str) -> bool:
        return self.unrestricted or self.principal.home_country == jurisdiction

    def require_jurisdiction(self, jurisdictions: Collection[str]) -> None:
        outside = sorted({j for j in jurisdictions if not self.may_act_in(j)})
        if outside:
            raise Forbidden(
                detail=(
                    "Operators act only in their home jurisdiction "
                    f"({self.principal.home_country}); refused for {', '.join(outside)}."
                )
            )


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """Resolve (once per request) the caller, or None for anonymous requests."""
    state = connection.scope.setdefault("state", {})
    if "principal" in state:
        return state["principal"]  # type: ignore[no-any-return]
    authenticator: Authenticator = connection.app.state.authenticator
    header = connection.headers.get("authorization")
    principal: Principal | None
    if header is not None:
        principal = await authenticator.from_authorization(header)
    else:
        cookie = connection.cookies.get(SESSION_COOKIE)
        principal = await authenticator.from_session_cookie(cookie) if cookie else None
    state["principal"] = principal
    if principal is not None:
        state["principal_ref"] = principal.ref
        state["org_id"] = principal.default_org_id
    return principal


async def authorization_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Litestar guard applied to every route of the app."""
    access = handler.opt.get(ACCESS_KEY)
    if not isinstance(access, Access):
        raise Forbidden(detail="This route has no access policy.")
    await authorize(connection, access)


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], access: Access) -> None:
    """Refuse a caller ``access`` does not admit; else leave its scope in the request's
    state. (The guard's work, also done by routes served outside Litestar's router.)"""
    if access.node_agent:
        await _authenticate_node(connection)
        return
    principal = await authenticate(connection) if not access.public else None
    if access.public:
        if access.csrf:
            await _check_csrf(connection, None)
        return
    if principal is None:
        raise Unauthenticated(detail="Sign in or send an API key.")
    if access.csrf:
        await _check_csrf(connection, principal)
    state = connection.scope["state"]
    if access.permission is not None:
        state["tenant_scope"] = TenantScope(_SCOPE_TOKEN, principal, access.permission)
    elif access.provider_permission is not None:
        if not provider_allows(principal.provider_role, access.provider_permission):
            if principal.provider_role is None:
                raise Forbidden(detail="This is a provider operator route.")
            raise Forbidden(
                detail=f"Your provider role ({principal.provider_role.value}) lacks "
                f"{access.provider_permission.value}."
            )
        state["provider_scope"] = ProviderScope(_SCOPE_TOKEN, principal, access.provider_permission)


class NodeVerifier(Protocol):
    async def verify(self, header: str | None) -> Any: ...


async def _authenticate_node(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    verifier: NodeVerifier | None = connection.app.state.get("node_authenticator")
    node = await verifier.verify(connection.headers.get("authorization")) if verifier else None
    if node is None:
        raise Unauthenticated(detail="Send the node's agent credential (Bearer cpn_...).")
    state = connection.scope.setdefault("state", {})
    state["node"] = node
    state["principal_ref"] = f"node:{node.node_id}"


async def _check_csrf(
    connection: ASGIConnection[Any, Any, Any, Any], principal: Principal | None
) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token (API keys need not).

    Anonymous forms (the login page) use a double-submit cookie instead.
    """
    if connection.scope.get("method") not in _UNSAFE:
        return
    if principal is not None and principal.kind != "user":
        return
    expected = principal.csrf_token if principal else connection.cookies.get(LOGIN_CSRF_COOKIE)
    presented = connection.headers.get(CSRF_HEADER) or await _form_token(connection)
    if not expected or not presented or not hmac.compare_digest(expected, presented):
        raise Forbidden(detail="Missing or wrong CSRF token; reload the page and try again.")


async def _form_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    content_type = connection.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    form = await connection.form()  # type: ignore[attr-defined]
    value = form.get(CSRF_FORM_FIELD)
    return value if isinstance(value, str) else None


def provide_tenant_scope(request: Any) -> TenantScope:
    scope = request.scope.get("state", {}).get("tenant_scope")
    if not isinstance(scope, TenantScope):
        raise Forbidden(detail="This route is not a tenant route.")
    return scope


def provide_provider_scope(request: Any) -> ProviderScope:
    scope = request.scope.get("state", {}).get("provider_scope")
    if not isinstance(scope, ProviderScope):
        raise Forbidden(detail="This route is not a provider route.")
    return scope


def provide_principal(request: Any) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise Unauthenticated(detail="Sign in or send an API key.")
    return principal
