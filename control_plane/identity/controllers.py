"""Identity API: sessions, organizations, members, projects, API keys."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import Cookie
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import TooManyRequests
from control_plane.http.idempotency import SECRET_ANSWER
from control_plane.http.pagination import Page, PageRequest
from control_plane.http.problems import problem_responses
from control_plane.identity import accounts, api_keys, org_deletion, organizations, projects
from control_plane.identity.authentication import SESSION_COOKIE, Authenticator
from control_plane.identity.authz import TenantScope, authenticated, public, tenant
from control_plane.identity.models import User
from control_plane.identity.principal import Principal
from control_plane.identity.roles import Permission, ProviderRole
from control_plane.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    LoginRequest,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    MeRead,
    OrgCreate,
    OrgRead,
    OrgUpdate,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
    SessionRead,
    SignupRequest,
    SwitchOrg,
    UserRead,
)
from control_plane.settings import Settings

OrgId = Annotated[str, Parameter(max_length=40)]
ResourceId = Annotated[str, Parameter(max_length=40)]


def user_read(u: User) -> UserRead:
    return UserRead(
        id=u.id,
        email=u.email,
        name=u.name,
        provider_role=ProviderRole(u.provider_role) if u.provider_role else None,
        home_country=u.home_country,
        created_at=u.created_at,
    )


def login_policy(settings: Settings) -> accounts.LoginPolicy:
    return accounts.LoginPolicy(
        settings.login_max_failures, settings.login_lockout_seconds, settings.session_ttl_seconds
    )


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def session_response(
    request: Request[Any, Any, Any], settings: Settings, new: accounts.NewSession
) -> Response[SessionRead]:
    response = Response(
        SessionRead(user=user_read(new.user), csrf_token=new.csrf_token, expires_at=new.expires_at),
        status_code=HTTP_200_OK,
    )
    set_session_cookie(response, settings, new.token)
    return response


def set_session_cookie(response: Response[Any], settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )


def check_login_rate(request: Request[Any, Any, Any], email: str) -> None:
    limiter = request.app.state.login_limiter
    for key in (f"ip:{client_address(request)}", f"email:{email.strip().lower()}"):
        if not limiter.allow(key):
            raise TooManyRequests(
                detail="Too many sign-in attempts; slow down.",
                headers={"Retry-After": str(limiter.retry_after(key))},
            )


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/login",
        opt=public(),
        status_code=HTTP_200_OK,
        summary="Sign in with a password",
        responses=problem_responses(401, 423, 429),
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: LoginRequest,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> Response[SessionRead]:
        check_login_rate(request, data.email)
        new = await accounts.password_login(
            db, clock, login_policy(settings), data.email, data.password, client_address(request)
        )
        return session_response(request, settings, new)

    @post(
        "/signup",
        opt=public(),
        status_code=HTTP_201_CREATED,
        summary="Create an account",
        responses=problem_responses(429),
    )
    async def signup(
        self,
        request: Request[Any, Any, Any],
        data: SignupRequest,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> Response[SessionRead]:
        check_login_rate(request, data.email)
        user = await accounts.signup(db, clock, data)
        await db.flush()
        new = await accounts.start_session(
            db, clock, user, "password", settings.session_ttl_seconds, client_address(request)
        )
        response = session_response(request, settings, new)
        response.status_code = HTTP_201_CREATED
        return response

    @post(
        "/logout",
        opt=authenticated(),
        status_code=HTTP_204_NO_CONTENT,
        summary="Sign out",
        # A declared cookie, not Response[None]: a 204 documented with no body.
        response_cookies=[
            Cookie(
                key=SESSION_COOKIE,
                path="/",
                expires=0,
                max_age=0,
                description="Removes the session cookie.",
            )
        ],
    )
    async def logout(
        self, request: Request[Any, Any, Any], principal: Principal, db: AsyncSession
    ) -> None:
        if principal.session_id:
            await accounts.end_session(db, principal.session_id, principal.user_id)
            authenticator: Authenticator = request.app.state.authenticator
            authenticator.forget_session(principal.session_id)

    @post(
        "/current-org",
        opt=authenticated(),
        status_code=HTTP_204_NO_CONTENT,
        summary="Switch the session's organization",
    )
    async def switch_org(
        self,
        request: Request[Any, Any, Any],
        data: SwitchOrg,
        principal: Principal,
        db: AsyncSession,
    ) -> None:
        await accounts.switch_org(db, principal, data.org_id)
        if principal.session_id:
            request.app.state.authenticator.forget_session(principal.session_id)


@get("/api/v1/me", opt=authenticated(), tags=["auth"], summary="Who am I")
async def me(principal: Principal, db: AsyncSession) -> MeRead:
    user, memberships = await accounts.who_am_i(db, principal)
    return MeRead(
        kind=principal.kind,
        user=user_read(user) if user else None,
        memberships=memberships,
        current_org_id=principal.default_org_id,
        project_id=principal.project_id,
        csrf_token=principal.csrf_token,
    )


class OrgController(Controller):
    path = "/api/v1/orgs"
    tags = ["organizations"]

    @get("/", opt=authenticated(), summary="Organizations you belong to")
    async def list_orgs(
        self, principal: Principal, db: AsyncSession, page: PageRequest
    ) -> Page[OrgRead]:
        return await organizations.list_orgs(db, principal, page)

    @post("/", opt=authenticated(), summary="Create an organization (you become its owner)")
    async def create_org(
        self,
        request: Request[Any, Any, Any],
        data: OrgCreate,
        principal: Principal,
        db: AsyncSession,
        clock: Clock,
    ) -> OrgRead:
        org = await organizations.create_org(db, clock, principal, data)
        request.app.state.authenticator.forget_user(principal.user_id or "")
        return org

    @get("/{org_id:str}", opt=tenant(Permission.ORG_READ))
    async def get_org(self, org_id: OrgId, tenant: TenantScope, db: AsyncSession) -> OrgRead:
        return await organizations.get_org(db, tenant, org_id)

    @patch("/{org_id:str}", opt=tenant(Permission.ORG_UPDATE))
    async def update_org(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        data: OrgUpdate,
        tenant: TenantScope,
        db: AsyncSession,
    ) -> OrgRead:
        updated = await organizations.update_org(db, tenant, org_id, data)
        request.app.state.authenticator.forget_org(org_id)  # sessions carry its name
        return updated

    @delete(
        "/{org_id:str}",
        opt=tenant(Permission.ORG_DELETE),
        summary="Delete the organization: members lose access, its keys are destroyed",
    )
    async def delete_org(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        confirm: Annotated[
            str, Parameter(max_length=63, description="The organization's slug (or id), again.")
        ],
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> None:
        hooks = getattr(request.app.state, "org_deletion_hooks", ())
        members = await org_deletion.delete_org(db, clock, tenant, org_id, confirm, hooks)
        for user_id in members:
            request.app.state.authenticator.forget_user(user_id)

    @get("/{org_id:str}/members", opt=tenant(Permission.MEMBERS_READ))
    async def list_members(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, page: PageRequest
    ) -> Page[MemberRead]:
        return await organizations.list_members(db, tenant, org_id, page)

    @post("/{org_id:str}/members", opt=tenant(Permission.MEMBERS_WRITE))
    async def add_member(
        self,
        org_id: OrgId,
        data: MemberCreate,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> MemberRead:
        return await organizations.add_member(db, clock, tenant, org_id, data)

    @patch("/{org_id:str}/members/{user_id:str}", opt=tenant(Permission.MEMBERS_WRITE))
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        user_id: ResourceId,
        data: MemberUpdate,
        tenant: TenantScope,
        db: AsyncSession,
    ) -> MemberRead:
        member = await organizations.update_member(db, tenant, org_id, user_id, data)
        request.app.state.authenticator.forget_user(user_id)
        return member

    @delete("/{org_id:str}/members/{user_id:str}", opt=tenant(Permission.MEMBERS_WRITE))
    async def remove_member(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        user_id: ResourceId,
        tenant: TenantScope,
        db: AsyncSession,
    ) -> None:
        await organizations.remove_member(db, tenant, org_id, user_id)
        request.app.state.authenticator.forget_user(user_id)


class ProjectController(Controller):
    path = "/api/v1/projects"
    tags = ["projects"]

    @get("/", opt=tenant(Permission.PROJECTS_READ), summary="Projects of an organization")
    async def list_projects(
        self,
        tenant: TenantScope,
        db: AsyncSession,
        page: PageRequest,
        org_id: Annotated[
            str | None,
            Parameter(max_length=40, description="Organization (default: your current one)"),
        ] = None,
    ) -> Page[ProjectRead]:
        return await projects.list_projects(db, tenant, org_id, page)

    @post("/", opt=tenant(Permission.PROJECTS_WRITE))
    async def create_project(
        self, data: ProjectCreate, tenant: TenantScope, db: AsyncSession, clock: Clock
    ) -> ProjectRead:
        return await projects.create_project(db, clock, tenant, data)

    @get("/{project_id:str}", opt=tenant(Permission.PROJECTS_READ))
    async def get_project(
        self, project_id: ResourceId, tenant: TenantScope, db: AsyncSession
    ) -> ProjectRead:
        return projects.project_read(await projects.visible_project(db, tenant, project_id))

    @patch("/{project_id:str}", opt=tenant(Permission.PROJECTS_WRITE))
    async def update_project(
        self, project_id: ResourceId, data: ProjectUpdate, tenant: TenantScope, db: AsyncSession
    ) -> ProjectRead:
        return await projects.update_project(db, tenant, project_id, data)

    @delete("/{project_id:str}", opt=tenant(Permission.PROJECTS_WRITE))
    async def delete_project(
        self,
        request: Request[Any, Any, Any],
        project_id: ResourceId,
        tenant: TenantScope,
        db: AsyncSession,
    ) -> None:
        await projects.delete_project(db, tenant, project_id)
        request.app.state.authenticator.forget_project(project_id)

    @get("/{project_id:str}/api-keys", opt=tenant(Permission.API_KEYS_READ))
    async def list_api_keys(
        self, project_id: ResourceId, tenant: TenantScope, db: AsyncSession, page: PageRequest
    ) -> Page[ApiKeyRead]:
        return await api_keys.list_api_keys(db, tenant, project_id, page)

    @post(
        "/{project_id:str}/api-keys",
        opt=tenant(Permission.API_KEYS_WRITE),
        summary="Create an API key (the secret is returned once)",
        cache_control=SECRET_ANSWER,
    )
    async def create_api_key(
        self,
        project_id: ResourceId,
        data: ApiKeyCreate,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> ApiKeyCreated:
        return await api_keys.create_api_key(db, clock, tenant, project_id, data)


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["api-keys"]

    @get("/{key_id:str}", opt=tenant(Permission.API_KEYS_READ))
    async def get_api_key(
        self, key_id: ResourceId, tenant: TenantScope, db: AsyncSession
    ) -> ApiKeyRead:
        return await api_keys.get_api_key(db, tenant, key_id)

    @post(
        "/{key_id:str}/revoke",
        opt=tenant(Permission.API_KEYS_WRITE),
        status_code=HTTP_200_OK,
        summary="Revoke an API key (effective within seconds everywhere)",
    )
    async def revoke_api_key(
        self,
        request: Request[Any, Any, Any],
        key_id: ResourceId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> ApiKeyRead:
        key = await api_keys.revoke_api_key(db, clock, tenant, key_id)
        request.app.state.authenticator.forget_api_key(key.prefix)
        return key


ROUTES: list[ControllerRouterHandler] = [
    AuthController,
    OrgController,
    ProjectController,
    ApiKeyController,
    me,
]
