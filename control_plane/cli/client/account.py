"""``cpctl`` profiles and sign-in: profile add/list/use/remove, login, logout, whoami."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import replace

import click

from control_plane.cli.client.base import (
    Column,
    Invocation,
    _cell,
    api_command,
    emit_json,
    emit_list,
)
from control_plane.cli.profiles import URL_ENV, Profile, ProfileError, ProfileStore
from control_plane.sdk import AuthenticationError, Client


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
