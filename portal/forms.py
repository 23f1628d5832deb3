"""Form handling shared by the pages: safe redirects, parsing, errors next to fields."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import ProblemError

T = TypeVar("T")

_AT_PATH = re.compile(r"\s*-\s*at `\$\.(?P<field>[A-Za-z0-9_]+)[^`]*`")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(value: str | None, default: str = "/dashboard") -> str:
    """A same-site path to go to after a form, or ``default``: never another host."""
    if not value or len(value) > 2000 or _CONTROL.search(value):
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(("/login", "/logout")):
        return default
    return value


@dataclass
class FormState:
    """What a re-rendered form needs: the values typed, errors by field, a form-level message."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.message)

    def add_problem(self, problem: ProblemError) -> None:
        """Put a service's field errors next to their fields, and its detail above the form."""
        for error in problem.errors:
            name = error.field.split(".", 1)[-1] if "." in error.field else error.field
            self.errors.setdefault(name, error.reason)
        self.message = problem.detail


async def read_form(request: Request[Any, Any, Any], names: Iterable[str]) -> FormState:
    """The named text fields of a posted form, trimmed of surrounding spaces."""
    form = await request.form()
    values = {}
    for name in names:
        raw = form.get(name)
        values[name] = raw.strip() if isinstance(raw, str) else ""
    return FormState(values=values)


def convert(
    state: FormState,
    struct_type: type[T],
    data: Mapping[str, Any],
    messages: Mapping[str, str] | None = None,
) -> T | None:
    """Validate ``data`` as ``struct_type``; on failure record the field error and return None.

    ``messages`` replaces the schema's wording (regexes, lengths) with words for people.
    Conversion is lax because every form value arrives as text ("90" for a number).
    """
    try:
        return msgspec.convert(data, struct_type, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT_PATH.search(text)
        name = match.group("field") if match else ""
        reason = _AT_PATH.sub("", text)
        if "length >= 1" in reason or (name and not str(data.get(name, "")).strip()):
            reason = "This field is required."
        elif messages and name in messages:
            reason = messages[name]
        if not name:  # a check in __post_init__ names its field in words ("amount must …")
            name = next((key for key in data if reason.startswith(f"{key} ")), "")
            if name and messages and name in messages:
                reason = messages[name]
        if name:
            state.errors.setdefault(name, reason)
        else:
            state.message = reason
        return None


async def discard(db: AsyncSession, problem: ProblemError) -> None:
    """Undo a failed service call's writes before showing the form again (as the API would)."""
    if not problem.commit_anyway:
        await db.rollback()
