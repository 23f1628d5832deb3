"""SQL filters the repositories share."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, bindparam, false
from sqlalchemy.orm import InstrumentedAttribute


def one_of(column: InstrumentedAttribute[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """``column`` is one of ``values``: ``= v`` for a single value, ``IN (...)`` (sorted, so
    equal sets give equal statements) for more, false for none. The single value is the
    common case (a caller in one organization, one tenancy read) and an ``IN`` costs an
    expanding parameter that SQLAlchemy renders again at every execution (about a tenth of
    a read's CPU time on a busy replica, measured with py-spy)."""
    if not values:
        return false()
    if len(values) == 1:
        equal: ColumnElement[bool] = column == next(iter(values))
        return equal
    return column.in_(sorted(values))


def bound_one_of(column: InstrumentedAttribute[Any], name: str, one: bool) -> ColumnElement[bool]:
    """:func:`one_of` for a statement built once: ``= :name`` when ``one``, else an expanding
    ``IN :name``; bind :func:`one_or_all` of the values to ``name``."""
    if one:
        equal: ColumnElement[bool] = column == bindparam(name)
        return equal
    return column.in_(bindparam(name, expanding=True))


def one_or_all(values: list[Any]) -> Any:
    """The value to bind to a :func:`bound_one_of` built with ``one=len(values) == 1``."""
    return values[0] if len(values) == 1 else values
