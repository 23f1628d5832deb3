"""GPU classes: a generation of the catalog (Hopper, Ampere ...) written as callers ask
for it. Pure, so the portal and the API agree on the spelling."""

from __future__ import annotations


def class_code(generation: str) -> str:
    """The generation in lower case, spaces as hyphens ("Ada Lovelace" is ``ada-lovelace``)."""
    return "-".join(generation.lower().split())
