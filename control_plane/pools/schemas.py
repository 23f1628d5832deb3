"""Request and response bodies of the pools API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from control_plane.http.fields import Code

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockTime = Annotated[
    str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local HH:MM")
]
Id = Annotated[str, Meta(min_length=1, max_length=40)]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class PoolCreate(_In):
    name: Code
    timezone: Annotated[str, Meta(min_length=1, max_length=64, description="IANA zone name")]
    description: Annotated[str, Meta(max_length=200)] = ""
    drain_minutes: Annotated[
        int, Meta(ge=0, le=720, description="no new placements this long before a window ends")
    ] = 30


class PoolNodesSet(_In):
    node_ids: Annotated[list[Id], Meta(max_length=1000)]


class WindowCreate(_In):
    """A weekly grant; ``org_id`` takes an organization id or slug, ``project_id`` narrows
    it to one project. ``end`` at or before ``start`` ends the next day."""

    org_id: Annotated[str, Meta(min_length=1, max_length=64)]
    days: Annotated[list[Day], Meta(min_length=1, max_length=7)]
    start: ClockTime
    end: ClockTime
    project_id: Id | None = None


class WindowRead(msgspec.Struct):
    id: str
    org_id: str
    project_id: str | None
    days: list[str]
    start: str
    end: str


class PoolNodeRead(msgspec.Struct):
    id: str
    hostname: str
    gpu_model: str
    gpu_count: int


class PoolRead(msgspec.Struct):
    id: str
    region: str
    name: str
    description: str
    timezone: str
    drain_minutes: int
    nodes: list[PoolNodeRead]
    windows: list[WindowRead]
    created_at: datetime
    open_to: str | None = None  # organization the pool is open to now, if any


class Opening(msgspec.Struct):
    """One concrete opening of a window (UTC); new work stops at ``drain_from``."""

    window_id: str
    org_id: str
    project_id: str | None
    start: datetime
    end: datetime
    drain_from: datetime


class TenantOpening(msgspec.Struct):
    """An opening granted to the caller's organization (no other tenant is ever named)."""

    project_id: str | None
    start: datetime
    end: datetime
    drain_from: datetime
    open_now: bool


class TenantPool(msgspec.Struct):
    name: str
    region: str
    timezone: str
    gpus: int
    gpu_model: str
    openings: list[TenantOpening]
