"""Constrained field types shared by request schemas, so bad input fails at the edge."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

# Printable text: no control characters, no lone surrogates (PostgreSQL would refuse them).
_PRINTABLE = r"^[^\x00-\x1f\x7f\ud800-\udfff]*$"
PRINTABLE = _PRINTABLE  # for one-off fields: Annotated[str, Meta(max_length=N, pattern=PRINTABLE)]
_PRINTABLE_MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]*$"

Name = Annotated[
    str,
    Meta(min_length=1, max_length=200, pattern=r"^(?=.*\S)[^\x00-\x1f\x7f\ud800-\udfff]+$"),
]
Description = Annotated[str, Meta(max_length=2000, pattern=_PRINTABLE_MULTILINE)]
Slug = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
        description="lower-case letters, digits and inner hyphens",
    ),
]
Email = Annotated[
    str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")
]
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
NewPassword = Annotated[str, Meta(min_length=12, max_length=1024)]
CountryCode = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
CurrencyCode = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
Code = Annotated[
    str, Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
]
Identifier = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Limit = Annotated[int, Meta(ge=1, le=1000)]
Reason = Annotated[str, Meta(min_length=1, max_length=500, pattern=_PRINTABLE)]
