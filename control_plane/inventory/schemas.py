"""Request and response bodies of the inventory API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from control_plane.http.fields import Code, CountryCode, CurrencyCode, Name, Reason
from control_plane.inventory.lifecycle import NodeState


class _In(msgspec.Struct, forbid_unknown_fields=True):
    pass


TimeZone = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")]
GroupName = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]


class RegionCreate(_In):
    code: Code
    name: Name
    jurisdiction: CountryCode
    sovereignty_group: GroupName
    currency: CurrencyCode
    pue: Decimal
    grid_intensity_g_per_kwh: Annotated[int, Meta(ge=0, le=2000)]
    timezone: TimeZone = "UTC"

    def __post_init__(self) -> None:
        _check_pue(self.pue)
        _check_zone(self.timezone)


def _check_pue(value: Decimal | msgspec.UnsetType) -> None:
    if isinstance(value, Decimal) and not (Decimal(1) <= value <= Decimal(3)):
        raise ValueError("pue must be between 1.0 and 3.0 - at `$.pue`")


def _check_zone(value: str | msgspec.UnsetType) -> None:
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone - at `$.timezone`") from None


class RegionUpdate(_In):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    pue: Decimal | msgspec.UnsetType = msgspec.UNSET
    grid_intensity_g_per_kwh: Annotated[int, Meta(ge=0, le=2000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    timezone: TimeZone | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        _check_pue(self.pue)
        _check_zone(self.timezone)


class SiteRead(msgspec.Struct):
    code: str
    region_code: str
    name: str
    city: str


class SiteCreate(_In):
    code: Code
    name: Name
    city: Name


class RegionRead(msgspec.Struct):
    code: str
    name: str
    jurisdiction: str
    sovereignty_group: str
    currency: str
    pue: Decimal
    grid_intensity_g_per_kwh: int
    timezone: str
    sites: list[SiteRead]


class GpuModelCreate(_In):
    code: Code
    name: Name
    vendor: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$")]
    generation: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$")]
    memory_gib: Annotated[int, Meta(ge=1, le=4096)]
    tdp_watts: Annotated[int, Meta(ge=1, le=5000)]
    interconnect: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 .-]+$")]
    mig_profiles: Annotated[
        list[Annotated[str, Meta(max_length=32, pattern=r"^[0-9a-z.+]+$")]], Meta(max_length=32)
    ] = msgspec.field(default_factory=list)


class GpuModelRead(msgspec.Struct):
    code: str
    name: str
    vendor: str
    generation: str
    memory_gib: int
    tdp_watts: int
    interconnect: str
    mig_profiles: list[str]


class GpuRead(msgspec.Struct):
    id: str
    uuid: str
    index: int
    model_code: str
    nvlink_domain: str | None
    pci_address: str | None = None
    numa_node: int | None = None


class NodeRead(msgspec.Struct):
    id: str
    hostname: str
    region_code: str
    site_code: str
    rack: str
    bmc_endpoint: str
    gpu_model_code: str
    gpu_count: int
    firmware_version: str
    driver_version: str
    state: NodeState
    state_changed_at: datetime
    created_at: datetime
    allowed_transitions: list[NodeState]
    gpus: list[GpuRead] | None = None


class NodeEventRead(msgspec.Struct):
    id: str
    node_id: str
    from_state: NodeState | None
    to_state: NodeState
    reason: str
    actor: str
    at: datetime


class NodeTransition(_In):
    to: NodeState
    reason: Reason


class NodeImport(_In):
    format: Literal["csv", "yaml"]
    content: Annotated[str, Meta(min_length=1, max_length=4_000_000)]
    dry_run: bool = False


class NodeImportResult(msgspec.Struct):
    imported: int
    dry_run: bool
    node_ids: list[str]


class StateCount(msgspec.Struct):
    state: str
    nodes: int
    gpus: int


class RegionSummary(msgspec.Struct):
    region_code: str
    region_name: str
    jurisdiction: str
    nodes: int
    gpus: int
    by_state: list[StateCount]
    gpus_by_model: dict[str, int]


class InventorySummary(msgspec.Struct):
    regions: list[RegionSummary]
    total_nodes: int
    total_gpus: int
