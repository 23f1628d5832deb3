"""Project API keys: shown once, stored as a SHA-256 digest, scoped, expiring, revocable."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import FieldError, Forbidden, NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity import repository
from control_plane.identity.authz import TenantScope
from control_plane.identity.models import ApiKey
from control_plane.identity.projects import visible_project
from control_plane.identity.roles import ROLE_RANK, TENANT_GRANTS, TenantRole
from control_plane.identity.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from control_plane.identity.secrets import new_api_key, token_digest
from control_plane.ids import new_id


def api_key_read(k: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=k.id,
        org_id=k.org_id,
        project_id=k.project_id,
        name=k.name,
        prefix=k.prefix,
        role=TenantRole(k.role),
        scopes=list(k.scopes),
        created_by=k.created_by,
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
        requests_per_second=k.requests_per_second,
        tokens_per_minute=k.tokens_per_minute,
    )


async def list_api_keys(
    db: AsyncSession, scope: TenantScope, project_id: str, page: PageRequest
) -> Page[ApiKeyRead]:
    await visible_project(db, scope, project_id)
    rows = await repository.api_keys(db, scope, project_id, page)
    result = make_page(rows, page, key=lambda k: k.id)
    return Page(items=[api_key_read(k) for k in result.items], next_cursor=result.next_cursor)


async def create_api_key(
    db: AsyncSession, clock: Clock, scope: TenantScope, project_id: str, data: ApiKeyCreate
) -> ApiKeyCreated:
    """A key never exceeds its creator: role at most theirs, scopes within that role."""
    project = await visible_project(db, scope, project_id)
    creator_role = scope.role_in(project.org_id)
    assert creator_role is not None
    role = data.role or creator_role
    if ROLE_RANK[role] > ROLE_RANK[creator_role] or (
        role != creator_role and ROLE_RANK[role] == ROLE_RANK[creator_role]
    ):
        raise Forbidden(
            detail=f"A {creator_role} cannot create a key with the {role} role.",
            errors=[FieldError("body.role", "above your own role")],
        )
    grantable = TENANT_GRANTS[role]
    if scope.principal.scopes is not None:
        grantable = grantable & scope.principal.scopes
    scopes = sorted(set(data.scopes) if data.scopes is not None else grantable)
    beyond = [s for s in scopes if s not in grantable]
    if beyond:
        raise Forbidden(
            detail="Requested scopes exceed what the key's role grants.",
            errors=[FieldError("body.scopes", f"not grantable: {', '.join(beyond)}")],
        )
    now = clock.now()
    prefix, secret = new_api_key()
    key = ApiKey(
        id=new_id("key"),
        org_id=project.org_id,
        project_id=project.id,
        name=data.name,
        prefix=prefix,
        secret_hash=token_digest(secret),
        role=role,
        scopes=[str(s) for s in scopes],
        created_by=scope.principal.user_id,
        created_at=now,
        expires_at=now + timedelta(days=data.expires_in_days) if data.expires_in_days else None,
        requests_per_second=data.requests_per_second,
        tokens_per_minute=data.tokens_per_minute,
    )
    db.add(key)
    return ApiKeyCreated(api_key=api_key_read(key), secret=secret)


async def revoke_api_key(
    db: AsyncSession, clock: Clock, scope: TenantScope, key_id: str
) -> ApiKeyRead:
    key = await repository.api_key(db, scope, key_id)
    if key is None:
        raise NotFound(detail="No such API key.")
    scope.require(key.org_id)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    return api_key_read(key)


async def get_api_key(db: AsyncSession, scope: TenantScope, key_id: str) -> ApiKeyRead:
    key = await repository.api_key(db, scope, key_id)
    if key is None:
        raise NotFound(detail="No such API key.")
    scope.require(key.org_id)
    return api_key_read(key)
