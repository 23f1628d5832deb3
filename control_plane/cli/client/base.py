"""What every SDK-backed ``cpctl`` command shares: invocation, errors, output, references.

Output is a table by default and JSON with ``--output json``. Errors go to stderr with the
problem's detail and field errors; the exit status is 2 for refused input, 1 otherwise.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from control_plane.cli.profiles import URL_ENV, ProfileError, ProfileStore, resolve
from control_plane.sdk import ApiError, AuthenticationError, Client, SdkError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])
Column = tuple[str, Callable[[Any], Any]]
OUTPUTS = ("table", "json")
EXIT_INVALID = 2
EXIT_FAILED = 1
SECRET_MODE = 0o600


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

    The command joins ``group``; top-level ones (group None) are added by
    :func:`control_plane.cli.client.register`.
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
    for note in getattr(exc, "__notes__", ()):  # a command's hint: exc.add_note("hint: ...")
        err(f"  {note}")


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


def write_secret(path: Path, text: str, *, replace: bool = False) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (never readable by others,
    even briefly). An existing file is refused, or with ``replace`` swapped atomically for
    the new one (which keeps 0600 whatever mode the old file had)."""
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(path, SECRET_MODE)  # exactly 0600, whatever the umask took away
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
