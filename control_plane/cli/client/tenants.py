"""``cpctl`` tenant commands: organizations, members, projects and project API keys."""

from __future__ import annotations

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_one,
    limit_option,
    org_id_of,
    project_id_of,
    user_id_of,
)
from control_plane.sdk.models import Permission, TenantRole

# ---------------------------------------------------------------- organizations and members

ORG_COLUMNS = columns("id", "slug", "name", "role", "created_at")
org_option = click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")


@click.group("orgs")
def orgs_group() -> None:
    """Organizations you belong to."""


@api_command(orgs_group, "list")
@limit_option
def orgs_list(inv: Invocation, limit: int | None) -> None:
    """Organizations you belong to, with your role."""
    with inv.client() as client:
        emit_list(inv, client.orgs.list().to_list(limit), ORG_COLUMNS)


@api_command(orgs_group, "get")
@click.argument("org")
def orgs_get(inv: Invocation, org: str) -> None:
    """Show ORG (an id or a slug)."""
    with inv.client() as client:
        emit_one(inv, client.orgs.get(org_id_of(client, org)), ORG_FIELDS)


ORG_FIELDS = ("id", "slug", "name", "role", "created_at")


@api_command(orgs_group, "create")
@click.argument("slug")
@click.option("--name", required=True)
def orgs_create(inv: Invocation, slug: str, name: str) -> None:
    """Create an organization; you become its owner."""
    with inv.client() as client:
        emit_one(inv, client.orgs.create(slug, name), ORG_FIELDS)


@click.group("members")
def members_group() -> None:
    """Members of an organization and their roles."""


ROLE = click.Choice([r.value for r in TenantRole])
MEMBER_FIELDS = ("user_id", "email", "name", "role", "created_at")


@api_command(members_group, "list")
@org_option
@limit_option
def members_list(inv: Invocation, org: str | None, limit: int | None) -> None:
    """Members of the organization and their roles."""
    with inv.client() as client:
        members = client.orgs.members(org_id_of(client, org)).list().to_list(limit)
    emit_list(inv, members, columns(*MEMBER_FIELDS))


@api_command(members_group, "add")
@click.argument("email")
@click.option("--role", type=ROLE, required=True)
@click.option("--name", help="Display name when the account is new.")
@org_option
def members_add(inv: Invocation, email: str, role: str, name: str | None, org: str | None) -> None:
    """Add EMAIL to the organization with a role (the account is created if new)."""
    with inv.client() as client:
        member = client.orgs.members(org_id_of(client, org)).add(email, role, name=name)
    emit_one(inv, member, MEMBER_FIELDS)


@api_command(members_group, "set-role")
@click.argument("user")
@click.option("--role", type=ROLE, required=True)
@org_option
def members_set_role(inv: Invocation, user: str, role: str, org: str | None) -> None:
    """Change the role of USER (a user id or an email)."""
    with inv.client() as client:
        org_id = org_id_of(client, org)
        member = client.orgs.members(org_id).update(user_id_of(client, org_id, user), role=role)
    emit_one(inv, member, MEMBER_FIELDS)


@api_command(members_group, "remove")
@click.argument("user")
@org_option
def members_remove(inv: Invocation, user: str, org: str | None) -> None:
    """Remove USER (a user id or an email) from the organization."""
    with inv.client() as client:
        org_id = org_id_of(client, org)
        client.orgs.members(org_id).remove(user_id_of(client, org_id, user))
    click.echo(f"removed {user}", err=inv.json)


# ---------------------------------------------------------------- projects and API keys

PROJECT_FIELDS = ("id", "org_id", "slug", "name", "description", "created_at")


@click.group("projects")
def projects_group() -> None:
    """Projects of an organization."""


@api_command(projects_group, "list")
@org_option
@limit_option
def projects_list(inv: Invocation, org: str | None, limit: int | None) -> None:
    """Projects of the organization (an API key sees only its own)."""
    with inv.client() as client:
        org_id = org_id_of(client, org) if org else None
        projects = client.projects.list(org_id).to_list(limit)
    emit_list(inv, projects, columns("id", "slug", "name", "created_at"))


@api_command(projects_group, "create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--description", default="")
@org_option
def projects_create(
    inv: Invocation, slug: str, name: str, description: str, org: str | None
) -> None:
    with inv.client() as client:
        org_id = org_id_of(client, org) if org else None
        emit_one(inv, client.projects.create(slug, name, org_id, description), PROJECT_FIELDS)


@api_command(projects_group, "get")
@click.argument("project")
def projects_get(inv: Invocation, project: str) -> None:
    """Show PROJECT (an id, or a slug in your current organization)."""
    with inv.client() as client:
        emit_one(inv, client.projects.get(project_id_of(client, project)), PROJECT_FIELDS)


@api_command(projects_group, "delete")
@click.argument("project")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def projects_delete(inv: Invocation, project: str, yes: bool) -> None:
    with inv.client() as client:
        project_id = project_id_of(client, project)
        if not yes:
            click.confirm(f"Delete project {project}?", abort=True)
        client.projects.delete(project_id)
    click.echo(f"deleted project {project}", err=inv.json)


KEY_FIELDS = (
    "id",
    "project_id",
    "name",
    "prefix",
    "role",
    "scopes",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


@click.group("api-keys")
def api_keys_group() -> None:
    """Project API keys (the secret is shown once, at creation)."""


@api_command(api_keys_group, "list")
@click.argument("project")
@limit_option
def api_keys_list(inv: Invocation, project: str, limit: int | None) -> None:
    """Keys of PROJECT (an id, or a slug in your current organization)."""
    with inv.client() as client:
        keys = client.api_keys.list(project_id_of(client, project)).to_list(limit)
    emit_list(inv, keys, columns("id", "name", "prefix", "role", "expires_at", "revoked_at"))


@api_command(api_keys_group, "create")
@click.argument("project")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, type=click.Choice([p.value for p in Permission]))
@click.option("--role", type=ROLE, help="At most your own role (default: yours).")
@click.option("--expires-in-days", type=click.IntRange(1, 730), default=90, show_default=True)
@click.option("--no-expiry", is_flag=True, help="A key that never expires.")
@click.option(
    "--requests-per-second",
    type=click.FloatRange(min=0.01, max=100_000),
    help="Inference gateway limit of this key (default: the operator's).",
)
@click.option(
    "--tokens-per-minute",
    type=click.IntRange(1, 1_000_000_000),
    help="Inference gateway token limit of this key (default: the operator's).",
)
def api_keys_create(
    inv: Invocation,
    project: str,
    name: str,
    scopes: tuple[str, ...],
    role: str | None,
    expires_in_days: int,
    no_expiry: bool,
    requests_per_second: float | None,
    tokens_per_minute: int | None,
) -> None:
    """Create a key for PROJECT and print its secret, once."""
    with inv.client() as client:
        created = client.api_keys.create(
            project_id_of(client, project),
            name,
            scopes=list(scopes) or None,
            role=role,
            expires_in_days=None if no_expiry else expires_in_days,
            requests_per_second=requests_per_second,
            tokens_per_minute=tokens_per_minute,
        )
    click.echo(
        "warning: the secret is shown only this once; store it now (e.g. cpctl profile add "
        "NAME --url URL --api-key-stdin).",
        err=True,
    )
    if inv.json:
        emit_json(created)
        return
    emit_one(inv, created.api_key, KEY_FIELDS)
    click.echo(f"{'secret':<{max(map(len, KEY_FIELDS))}}  {created.secret}")


@api_command(api_keys_group, "get")
@click.argument("key_id")
def api_keys_get(inv: Invocation, key_id: str) -> None:
    with inv.client() as client:
        emit_one(inv, client.api_keys.get(key_id), KEY_FIELDS)


@api_command(api_keys_group, "revoke")
@click.argument("key_id")
def api_keys_revoke(inv: Invocation, key_id: str) -> None:
    """Revoke KEY_ID: it stops working within seconds everywhere."""
    with inv.client() as client:
        emit_one(inv, client.api_keys.revoke(key_id), KEY_FIELDS)
