"""Cursor pagination shared by every list: ``?limit=&cursor=`` → ``{items, next_cursor}``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from control_plane.errors import FieldError, InvalidInput

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    """Validated paging input: at most ``limit`` items strictly after ``after``."""

    limit: int
    after: str | None


def encode_cursor(last_key: str) -> str:
    raw = json.dumps({"after": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def page_request(limit: int | None, cursor: str | None, default: int, maximum: int) -> PageRequest:
    """Check ``limit`` and decode ``cursor``; bad values are a 400 naming the parameter."""
    if limit is None:
        limit = default
    if not 1 <= limit <= maximum:
        raise InvalidInput(
            detail="limit is out of range.",
            errors=[FieldError("query.limit", f"must be between 1 and {maximum}")],
        )
    return PageRequest(limit=limit, after=_decode_cursor(cursor) if cursor else None)


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data: Any = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after = data["after"]
        if not isinstance(after, str) or len(after) > 200:
            raise ValueError("bad cursor")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidInput(
            detail="cursor is not one this API issued.",
            errors=[FieldError("query.cursor", "malformed cursor")],
        ) from exc
    return after


def make_page(rows: Sequence[T], request: PageRequest, key: Any) -> Page[T]:
    """Build a page from up to ``limit + 1`` rows fetched in key order."""
    has_more = len(rows) > request.limit
    items = list(rows[: request.limit])
    next_cursor = encode_cursor(str(key(items[-1]))) if has_more and items else None
    return Page(items=items, next_cursor=next_cursor)
