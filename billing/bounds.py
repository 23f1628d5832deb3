"""Range checks for decimal amounts in request bodies (msgspec constrains only ints and
floats): called from a body's ``__post_init__``, a failure is answered as a 400 naming
the field."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["bounded"]


def bounded(value: Decimal | None, name: str, high: int, *, zero_ok: bool = True) -> None:
    if value is None:
        return
    if not value.is_finite() or value > high or value < 0 or (value == 0 and not zero_ok):
        low = "0" if zero_ok else "more than 0"
        raise ValueError(f"{name} must be from {low} to {high}")
