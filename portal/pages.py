"""Placeholder, replaced by the portal package."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
