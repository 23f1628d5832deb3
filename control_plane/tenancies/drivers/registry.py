"""Which driver builds a tenancy of a kind in a region: chosen from ``CP_DRIVERS``.

Drivers are imported lazily by name, so a deployment that never uses Slurm never imports
its client code. Each driver module exposes ``build(context) -> Driver``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import Driver, TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver

__all__ = ["BUILT_IN", "DriverContext", "Drivers", "RevealSecret"]

# Reveals a provider secret by name (e.g. "bmc/gpu-017") for a stated reason; the
# reconciler's implementation records the use in the ledger before returning the value.
RevealSecret = Callable[[str, str], Awaitable[bytes]]

BUILT_IN: dict[str, str] = {
    "libvirt": "control_plane.tenancies.drivers.libvirt.driver",
    "kubernetes": "control_plane.tenancies.drivers.kubernetes.driver",
    "redfish": "control_plane.tenancies.drivers.redfish",
    "slurm": "control_plane.tenancies.drivers.slurm",
    "triton-local": "control_plane.endpoints.triton.driver",
}
# Kinds whose default is not the simulator: an inference replica must really serve.
DEFAULTS: dict[TenancyKind, str] = {TenancyKind.INFERENCE: "triton-local"}


@dataclass(frozen=True, slots=True)
class DriverContext:
    region: str
    kind: TenancyKind
    settings: Settings
    reveal_secret: RevealSecret


async def _no_secrets(name: str, reason: str) -> bytes:
    raise LookupError(f"no secret store wired: cannot reveal {name!r}")


@dataclass
class Drivers:
    """Builds and caches one driver per (region, kind)."""

    settings: Settings
    reveal_secret: RevealSecret = _no_secrets
    _built: dict[tuple[str, TenancyKind], Driver] = field(default_factory=dict)

    def name_for(self, region: str, kind: TenancyKind) -> str:
        return self.settings.drivers.get(f"{region}/{kind.value}", DEFAULTS.get(kind, "sim"))

    def for_tenancy(self, region: str, kind: TenancyKind) -> Driver:
        key = (region, kind)
        if key not in self._built:
            self._built[key] = self._build(region, kind)
        return self._built[key]

    def _build(self, region: str, kind: TenancyKind) -> Driver:
        name = self.name_for(region, kind)
        if name == "sim":
            return SimDriver(
                kind=kind, state_dir=self.settings.sim_dir, boot_polls=self.settings.sim_boot_polls
            )
        if name not in BUILT_IN:
            raise LookupError(f"unknown driver {name!r} for {region}/{kind.value}")
        module = importlib.import_module(BUILT_IN[name])
        build: Callable[[DriverContext], Driver] = module.build
        return build(DriverContext(region, kind, self.settings, self.reveal_secret))
