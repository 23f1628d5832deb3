"""Projects inside an organization."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, Forbidden, NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity import repository
from control_plane.identity.authz import TenantScope
from control_plane.identity.models import Project
from control_plane.identity.schemas import ProjectCreate, ProjectRead, ProjectUpdate
from control_plane.ids import new_id


def project_read(p: Project) -> ProjectRead:
    return ProjectRead(
        id=p.id,
        org_id=p.org_id,
        slug=p.slug,
        name=p.name,
        description=p.description,
        created_at=p.created_at,
    )


async def list_projects(
    db: AsyncSession, scope: TenantScope, org_id: str | None, page: PageRequest
) -> Page[ProjectRead]:
    org = scope.resolve_org(org_id)
    rows = await repository.projects(db, scope, org, page)
    items = [
        ProjectRead(id=id_, org_id=org, slug=slug, name=name, description=text, created_at=created)
        for id_, org, slug, name, text, created in rows
    ]
    return make_page(items, page, key=lambda p: p.id)


async def create_project(
    db: AsyncSession, clock: Clock, scope: TenantScope, data: ProjectCreate
) -> ProjectRead:
    org_id = scope.resolve_org(data.org_id)
    _refuse_project_keys(scope, "create projects")
    taken = await db.execute(
        select(Project.id).where(
            scope.org_filter(Project.org_id), Project.org_id == org_id, Project.slug == data.slug
        )
    )
    if taken.first():
        raise Conflict(
            detail="A project with this slug exists in the organization.",
            errors=[FieldError("body.slug", "already taken")],
        )
    project = Project(
        id=new_id("prj"),
        org_id=org_id,
        slug=data.slug,
        name=data.name,
        description=data.description,
        created_at=clock.now(),
    )
    db.add(project)
    return project_read(project)


def _refuse_project_keys(scope: TenantScope, action: str) -> None:
    """API keys act inside their own project; organization-level changes need a person."""
    if scope.project_id is not None:
        raise Forbidden(detail=f"Project API keys cannot {action}; sign in as a user to do so.")


async def visible_project(db: AsyncSession, scope: TenantScope, project_id: str) -> Project:
    """The project, checked against the scope's permission (404 if invisible, 403 if denied)."""
    project = await repository.project(db, scope, project_id)
    if project is None:
        raise NotFound(detail="No such project.")
    scope.require(project.org_id)
    return project


async def update_project(
    db: AsyncSession, scope: TenantScope, project_id: str, data: ProjectUpdate
) -> ProjectRead:
    project = await visible_project(db, scope, project_id)
    if isinstance(data.name, str):
        project.name = data.name
    if isinstance(data.description, str):
        project.description = data.description
    return project_read(project)


async def delete_project(db: AsyncSession, scope: TenantScope, project_id: str) -> None:
    project = await visible_project(db, scope, project_id)
    _refuse_project_keys(scope, "delete projects")
    await db.delete(project)
