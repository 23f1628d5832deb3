"""``cpctl`` commands that drive the API through the SDK: profiles, sign-in, tenants, fleet.

Output is a table by default and JSON with ``--output json``. Errors go to stderr with the
problem's detail and field errors; the exit status is 2 for refused input, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import click
import msgspec

from control_plane.cli.profiles import (
    DEFAULT_PROFILE,
    PROFILE_ENV,
    URL_ENV,
    Profile,
    ProfileError,
    ProfileStore,
    resolve,
)
from control_plane.sdk import ApiError, AuthenticationError, Client, SdkError, ValidationError
from control_plane.sdk.models import NodeState, Permission, TenantRole

F = TypeVar("F", bound=Callable[..., Any])
Column = tuple[str, Callable[[Any], Any]]
OUTPUTS = ("table", "json")
EXIT_INVALID = 2
EXIT_FAILED = 1


@dataclass(frozen=True)
class Invocation:
    """The profile and output format one command runs with."""

    profile: str | None
    output: str

    def store(self) -> ProfileStore:
        return ProfileStore.load()

    def client(self) -> Client:
        connection = resolve(self.store(), self.profile)
        if not connection.url:
            raise ProfileError(f"no API URL: add a profile or set {URL_ENV}")
        return Client(
            connection.url,
            connection.api_key,
            session_token=connection.session_token,
            csrf_token=connection.csrf_token,
        )

    @property
    def json(self) -> bool:
        return self.output == "json"


def api_command(
    group: click.Group | None, name: str, *, help_text: str | None = None
) -> Callable[[F], click.Command]:
    """Make ``fn(inv, **options)`` a command with --profile/--output and error mapping.

    The command joins ``group``; top-level ones (group None) are added by :func:`register`.
    """

    def decorate(fn: F) -> click.Command:
        @click.option("--profile", "profile_opt", metavar="NAME", help="Profile to use.")
        @click.option("--output", "-o", "output_opt", type=click.Choice(OUTPUTS), help="Format.")
        @functools.wraps(fn)
        def command(profile_opt: str | None, output_opt: str | None, **options: Any) -> None:
            ctx = click.get_current_context()
            inv = Invocation(
                profile=profile_opt or ctx.meta.get("cpctl.profile"),
                output=output_opt or ctx.meta.get("cpctl.output") or "table",
            )
            try:
                fn(inv, **options)
            except ValidationError as exc:
                _report(exc)
                ctx.exit(EXIT_INVALID)
            except (SdkError, ProfileError) as exc:
                _report(exc)
                ctx.exit(EXIT_FAILED)

        made = click.command(name, help=help_text)(command)
        if group is not None:
            group.add_command(made)
        return made

    return decorate


def _report(exc: Exception) -> None:
    err = functools.partial(click.echo, err=True)
    if isinstance(exc, ApiError):
        err(f"error: {exc.status} {exc.title}" + (f": {exc.detail}" if exc.detail else ""))
        for field, reason in exc.errors:
            err(f"  {field}: {reason}")
        if exc.request_id:
            err(f"  (request id {exc.request_id})")
        if isinstance(exc, AuthenticationError):
            err("  hint: check the profile's API key, or sign in again with: cpctl login")
    else:
        err(f"error: {exc}")


# ---------------------------------------------------------------- output


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def emit_table(rows: Sequence[Any], columns: Sequence[Column]) -> None:
    cells = [[_cell(get(row)) for _, get in columns] for row in rows]
    headers = [title for title, _ in columns]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for line in [headers, *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def emit_json(value: Any) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))


def emit_list(inv: Invocation, items: Iterable[Any], columns: Sequence[Column]) -> None:
    rows = list(items)
    if inv.json:
        emit_json(rows)
    elif rows:
        emit_table(rows, columns)
    else:
        click.echo("(none)", err=True)


def emit_one(inv: Invocation, item: Any, fields: Sequence[str]) -> None:
    if inv.json:
        emit_json(item)
        return
    width = max(len(f) for f in fields)
    for name in fields:
        click.echo(f"{name.replace('_', ' '):<{width}}  {_cell(getattr(item, name))}")


def _attr(name: str) -> Callable[[Any], Any]:
    return lambda row: getattr(row, name)


def columns(*names: str) -> list[Column]:
    return [(n.upper().replace("_", " "), _attr(n)) for n in names]


limit_option = click.option(
    "--limit", type=click.IntRange(min=1), help="Show at most this many (default: all)."
)


# ---------------------------------------------------------------- references


def org_id_of(client: Client, ref: str | None) -> str:
    """An organization id from an id, a slug, or (None) the caller's current organization."""
    if ref is None:
        current = client.me().current_org_id
        if current is None:
            raise ProfileError("you belong to no organization; pass --org")
        return current
    if ref.startswith("org_"):
        return ref
    for org in client.orgs.list():
        if org.slug == ref:
            return org.id
    raise ProfileError(f"no organization with slug {ref!r} among yours")


def project_id_of(client: Client, ref: str) -> str:
    """A project id from an id or a slug in the current organization."""
    if ref.startswith("prj_"):
        return ref
    for project in client.projects.list():
        if project.slug == ref:
            return project.id
    raise ProfileError(f"no project with slug {ref!r} in your current organization")


def user_id_of(client: Client, org_id: str, ref: str) -> str:
    if "@" not in ref:
        return ref
    for member in client.orgs.members(org_id).list():
        if member.email == ref.lower():
            return member.user_id
    raise ProfileError(f"{ref} is not a member of the organization")


def node_id_of(client: Client, ref: str) -> str:
    """A node id from an id or an exact hostname."""
    if ref.startswith("node_"):
        return ref
    for node in client.nodes.list(hostname=ref):
        if node.hostname == ref:
            return node.id
    raise ProfileError(f"no node with hostname {ref!r}")


# ---------------------------------------------------------------- profiles and sign-in


@click.group("profile")
def profile_group() -> None:
    """Saved API endpoints and credentials (~/.config/cpctl/profiles.toml, or $CPCTL_CONFIG)."""


@api_command(profile_group, "add")
@click.argument("name")
@click.option("--url", required=True, help="Base URL of the control plane.")
@click.option("--api-key", "api_key", metavar="KEY", help="Project API key (prefer stdin).")
@click.option("--api-key-stdin", is_flag=True, help="Read the API key from standard input.")
@click.option("--use/--no-use", "make_current", default=False, help="Make it the current one.")
def profile_add(
    inv: Invocation,
    name: str,
    url: str,
    api_key: str | None,
    api_key_stdin: bool,
    make_current: bool,
) -> None:
    """Add or replace a profile. Operators add one without a key, then run cpctl login."""
    if api_key and api_key_stdin:
        raise click.UsageError("give --api-key or --api-key-stdin, not both")
    if api_key_stdin:
        api_key = sys.stdin.readline().strip() or None
        if api_key is None:
            raise click.UsageError("no API key on standard input")
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    store = inv.store()
    existed = name in store.profiles
    store.put(name, Profile(url=url.rstrip("/")).with_api_key(api_key))
    if make_current:
        store.current = name
    store.save()
    click.echo(f"{'updated' if existed else 'added'} profile {name} ({store.path})")


@api_command(profile_group, "list")
def profile_list(inv: Invocation) -> None:
    """Profiles, their URL and kind of credential (never the secret)."""
    store = inv.store()
    rows = [
        {"name": n, "url": p.url, "auth": p.auth_label, "current": n == store.current}
        for n, p in sorted(store.profiles.items())
    ]
    if inv.json:
        emit_json(rows)
        return
    cols: list[Column] = [
        ("", lambda r: "*" if r["current"] else ""),
        ("NAME", lambda r: r["name"]),
        ("URL", lambda r: r["url"]),
        ("AUTH", lambda r: r["auth"]),
    ]
    emit_list(inv, rows, cols)


@api_command(profile_group, "use")
@click.argument("name")
def profile_use(inv: Invocation, name: str) -> None:
    """Make NAME the profile commands use by default."""
    store = inv.store()
    store.get(name)
    store.current = name
    store.save()
    click.echo(f"using profile {name}")


@api_command(profile_group, "remove")
@click.argument("name")
def profile_remove(inv: Invocation, name: str) -> None:
    """Forget a profile and its credential (a session stays valid until it expires)."""
    store = inv.store()
    store.remove(name)
    store.save()
    click.echo(f"removed profile {name}")


def _login_profile(inv: Invocation, url: str | None) -> tuple[ProfileStore, str, Profile]:
    store = inv.store()
    name = store.selected_name(inv.profile)
    existing = store.profiles.get(name)
    base = url or os.environ.get(URL_ENV) or (existing.url if existing else None)
    if not base:
        raise ProfileError(f"no URL for profile {name!r}: pass --url")
    return store, name, replace(existing or Profile(url=base), url=base.rstrip("/"))


@api_command(None, "login")
@click.option("--email", required=True, help="Your sign-in email.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--url", help="Base URL (creates or updates the profile).")
def login(inv: Invocation, email: str, password_stdin: bool, url: str | None) -> None:
    """Sign in with a password (provider operators) and keep the session in the profile."""
    store, name, profile = _login_profile(inv, url)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True)
    with Client(profile.url) as client:
        session = client.login(email, password)
        token, csrf = client.session_token, client.csrf_token
    if token is None or csrf is None:  # login() raises first; this keeps mypy honest
        raise ProfileError("the server returned no session")
    expires = session.expires_at.isoformat()
    store.put(name, profile.with_session(token, csrf, session.user.email, expires))
    store.save()
    role = session.user.provider_role
    click.echo(
        f"signed in as {session.user.email}"
        + (f" ({role.value})" if role else "")
        + f"; profile {name}; session until {_cell(session.expires_at)} UTC"
    )


@api_command(None, "logout")
def logout(inv: Invocation) -> None:
    """End the profile's session on the server and forget it."""
    store = inv.store()
    name = store.selected_name(inv.profile)
    profile = store.get(name)
    if not profile.session_token:
        click.echo(f"profile {name} has no session")
        return
    with (
        Client(
            profile.url, session_token=profile.session_token, csrf_token=profile.csrf_token
        ) as client,
        contextlib.suppress(AuthenticationError),
    ):
        # Already expired or ended: forgetting it locally is all that is left to do.
        client.logout()
    store.put(name, profile.without_session())
    store.save()
    click.echo(f"signed out (profile {name})")


@api_command(None, "whoami")
def whoami(inv: Invocation) -> None:
    """The identity behind the current credential, and its organizations."""
    with inv.client() as client:
        me = client.me()
    if inv.json:
        emit_json(me)
        return
    who = me.user.email if me.user else f"API key of project {me.project_id}"
    click.echo(f"{who} [{me.kind}]")
    if me.user and me.user.provider_role:
        click.echo(f"provider role: {me.user.provider_role.value}")
    for m in me.memberships:
        marker = "*" if m.org_id == me.current_org_id else " "
        click.echo(f"{marker} {m.org_slug:<24} {m.role.value:<8} {m.org_id}")


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
def api_keys_create(
    inv: Invocation,
    project: str,
    name: str,
    scopes: tuple[str, ...],
    role: str | None,
    expires_in_days: int,
    no_expiry: bool,
) -> None:
    """Create a key for PROJECT and print its secret, once."""
    with inv.client() as client:
        created = client.api_keys.create(
            project_id_of(client, project),
            name,
            scopes=list(scopes) or None,
            role=role,
            expires_in_days=None if no_expiry else expires_in_days,
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


# ---------------------------------------------------------------- catalog


REGION_FIELDS = (
    "code",
    "name",
    "jurisdiction",
    "sovereignty_group",
    "currency",
    "pue",
    "grid_intensity_g_per_kwh",
)


@click.group("regions")
def regions_group() -> None:
    """Regions, their jurisdiction and sites."""


@api_command(regions_group, "list")
def regions_list(inv: Invocation) -> None:
    """Regions with their jurisdiction, sovereignty group and sites."""
    with inv.client() as client:
        regions = client.regions.list().to_list()
    cols = columns("code", "name", "jurisdiction", "sovereignty_group", "currency")
    cols.append(("SITES", lambda r: [s.code for s in r.sites]))
    emit_list(inv, regions, cols)


@api_command(regions_group, "get")
@click.argument("code")
def regions_get(inv: Invocation, code: str) -> None:
    """Show region CODE and its sites."""
    with inv.client() as client:
        region = client.regions.get(code)
    emit_one(inv, region, REGION_FIELDS)
    if not inv.json:
        width = max(map(len, REGION_FIELDS))
        for site in region.sites:
            click.echo(f"{'site':<{width}}  {site.code}: {site.name} ({site.city})")


@click.group("gpu-models")
def gpu_models_group() -> None:
    """The GPU catalog."""


@api_command(gpu_models_group, "list")
def gpu_models_list(inv: Invocation) -> None:
    """The GPU catalog."""
    with inv.client() as client:
        models = client.gpu_models.list().to_list()
    cols = columns("code", "name", "memory_gib", "tdp_watts", "interconnect", "mig_profiles")
    emit_list(inv, models, cols)


# ---------------------------------------------------------------- nodes (operators)

NODE_STATE = click.Choice([s.value for s in NodeState])
NODE_FIELDS = (
    "id",
    "hostname",
    "region_code",
    "site_code",
    "rack",
    "gpu_model_code",
    "gpu_count",
    "state",
    "state_changed_at",
    "allowed_transitions",
    "firmware_version",
    "driver_version",
    "bmc_endpoint",
)
reason_option = click.option("--reason", required=True, help="Why (kept in the node's history).")


@click.group("nodes")
def nodes_group() -> None:
    """The fleet (provider operators; sign in with cpctl login)."""


@api_command(nodes_group, "list")
@click.option("--region")
@click.option("--state", type=NODE_STATE)
@click.option("--gpu-model")
@click.option("--hostname", help="Hostname prefix.")
@click.option("--site")
@limit_option
def nodes_list(
    inv: Invocation,
    limit: int | None,
    region: str | None,
    state: str | None,
    gpu_model: str | None,
    hostname: str | None,
    site: str | None,
) -> None:
    """Nodes by hostname, filtered by region, state, GPU model, hostname prefix or site."""
    with inv.client() as client:
        nodes = client.nodes.list(
            region=region, state=state, gpu_model=gpu_model, hostname=hostname, site=site
        ).to_list(limit)
    cols = columns("hostname", "region_code", "site_code", "gpu_model_code", "gpu_count", "state")
    emit_list(inv, nodes, [("ID", _attr("id")), *cols])


@api_command(nodes_group, "get")
@click.argument("node")
def nodes_get(inv: Invocation, node: str) -> None:
    """Show NODE (an id or a hostname)."""
    with inv.client() as client:
        emit_one(inv, client.nodes.get(node_id_of(client, node)), NODE_FIELDS)


@api_command(nodes_group, "events")
@click.argument("node")
@limit_option
def nodes_events(inv: Invocation, node: str, limit: int | None) -> None:
    """Lifecycle history of NODE."""
    with inv.client() as client:
        events = client.nodes.events(node_id_of(client, node)).to_list(limit)
    emit_list(inv, events, columns("at", "from_state", "to_state", "actor", "reason"))


def _transition(inv: Invocation, node: str, to: str, reason: str) -> None:
    with inv.client() as client:
        result = client.nodes.transition(node_id_of(client, node), to, reason)
    if inv.json:
        emit_json(result)
    else:
        click.echo(f"{result.hostname}: {result.state.value}")


def _shortcut(name: str, to: NodeState, help_text: str) -> None:
    @api_command(nodes_group, name, help_text=help_text)
    @click.argument("node")
    @reason_option
    def command(inv: Invocation, node: str, reason: str) -> None:
        _transition(inv, node, to.value, reason)


_shortcut("drain", NodeState.DRAINING, "Stop placing work on NODE; running work finishes.")
_shortcut("maintenance", NodeState.MAINTENANCE, "Take NODE out of service for maintenance.")
_shortcut("available", NodeState.AVAILABLE, "Return NODE to service.")


@api_command(nodes_group, "transition")
@click.argument("node")
@click.option("--to", "to", type=NODE_STATE, required=True)
@reason_option
def nodes_transition(inv: Invocation, node: str, to: str, reason: str) -> None:
    """Move NODE to any state its lifecycle allows (e.g. retired)."""
    _transition(inv, node, to, reason)


@api_command(nodes_group, "import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "yaml"]), help="Default: extension.")
@click.option("--dry-run", is_flag=True, help="Check every row; enrol nothing.")
def nodes_import(inv: Invocation, file: Path, fmt: str | None, dry_run: bool) -> None:
    """Enrol the nodes listed in FILE (CSV or YAML): every row, or none if one is bad."""
    fmt = fmt or _format_of(file)
    content = file.read_text(encoding="utf-8")
    with inv.client() as client:
        result = client.nodes.import_file(cast(Literal["csv", "yaml"], fmt), content, dry_run)
    if inv.json:
        emit_json(result)
    elif result.dry_run:
        click.echo(f"{result.imported} node(s) would be enrolled (dry run; nothing changed)")
    else:
        click.echo(f"enrolled {result.imported} node(s)")


def _format_of(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    raise click.BadParameter(
        "cannot tell the format from the extension; pass --format", param_hint="FILE"
    )


@api_command(nodes_group, "summary")
def nodes_summary(inv: Invocation) -> None:
    """Nodes and GPUs per region and state."""
    with inv.client() as client:
        summary = client.nodes.summary()
    if inv.json:
        emit_json(summary)
        return
    cols: list[Column] = [
        ("REGION", _attr("region_code")),
        ("JURISDICTION", _attr("jurisdiction")),
        ("NODES", _attr("nodes")),
        ("GPUS", _attr("gpus")),
        ("BY STATE", lambda r: [f"{s.state}={s.nodes}" for s in r.by_state]),
    ]
    emit_table(summary.regions, cols)
    click.echo(f"total: {summary.total_nodes} nodes, {summary.total_gpus} GPUs")


# ---------------------------------------------------------------- wiring

GROUPS = (
    profile_group,
    orgs_group,
    members_group,
    projects_group,
    api_keys_group,
    regions_group,
    gpu_models_group,
    nodes_group,
)
TOP_LEVEL = (login, logout, whoami)


def register(cli: click.Group) -> None:
    """Add the client commands and the global --profile/--output options to ``cli``."""
    _add_global_options(cli)
    for command in (*GROUPS, *TOP_LEVEL):
        cli.add_command(command)


def _add_global_options(cli: click.Group) -> None:
    cli.params.extend(
        [
            click.Option(
                ["--profile"],
                envvar=PROFILE_ENV,
                metavar="NAME",
                help=f"Profile for API commands (env {PROFILE_ENV}; default: current, "
                f"else {DEFAULT_PROFILE!r}).",
            ),
            click.Option(
                ["--output", "-o"], type=click.Choice(OUTPUTS), help="table (default) or json."
            ),
        ]
    )
    original = cli.callback

    @functools.wraps(original or (lambda: None))
    def callback(profile: str | None = None, output: str | None = None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.meta["cpctl.profile"] = profile
        ctx.meta["cpctl.output"] = output
        return original(**kwargs) if original else None

    cli.callback = callback
