"""The libvirt driver's options for one region, read once from :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Formatter

from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import AllocatedNode

__all__ = ["LibvirtConfig", "Sizing"]

_REGION_KEYS = frozenset(
    {
        "uri_template",
        "image_pool",
        "disk_pool",
        "default_image",
        "network",
        "console_url_template",
    }
)
_URI_FIELDS = frozenset({"hostname", "node_id", "region"})
_CONSOLE_FIELDS = frozenset({"token", "region", "host"})


@dataclass(frozen=True, slots=True)
class Sizing:
    """How big a domain is per GPU it gets (scaled by the GPU share), with floors."""

    vcpus_per_gpu: int = 16
    memory_gib_per_gpu: int = 96
    min_vcpus: int = 2
    min_memory_gib: int = 4
    disk_gib: int = 100


@dataclass(frozen=True, slots=True)
class LibvirtConfig:
    """How to reach one region's hypervisors and what to build on them."""

    region: str
    uri_template: str = "qemu+ssh://root@{hostname}/system"
    image_pool: str = "images"
    disk_pool: str = "tenancies"
    default_image: str = ""
    network: str = "default"
    guest_user: str = "tenant"
    sizing: Sizing = field(default_factory=Sizing)
    shutdown_grace_seconds: float = 60.0
    wipe_volumes: bool = True
    upload_seed: bool = True
    console_url_template: str = ""
    console_key: bytes = field(default=b"", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, region: str) -> LibvirtConfig:
        override = settings.libvirt_regions.get(region, {})
        unknown = set(override) - _REGION_KEYS
        if unknown:
            raise ValueError(f"CP_LIBVIRT_REGIONS[{region!r}]: unknown keys {sorted(unknown)}")
        config = cls(
            region=region,
            uri_template=override.get("uri_template", settings.libvirt_uri_template),
            image_pool=override.get("image_pool", settings.libvirt_image_pool),
            disk_pool=override.get("disk_pool", settings.libvirt_disk_pool),
            default_image=override.get("default_image", settings.libvirt_default_image),
            network=override.get("network", settings.libvirt_network),
            guest_user=settings.libvirt_guest_user,
            sizing=Sizing(
                vcpus_per_gpu=settings.libvirt_vcpus_per_gpu,
                memory_gib_per_gpu=settings.libvirt_memory_gib_per_gpu,
                min_vcpus=settings.libvirt_min_vcpus,
                min_memory_gib=settings.libvirt_min_memory_gib,
                disk_gib=settings.libvirt_disk_gib,
            ),
            shutdown_grace_seconds=settings.libvirt_shutdown_grace_seconds,
            wipe_volumes=settings.libvirt_wipe_volumes,
            upload_seed=settings.libvirt_upload_seed,
            console_url_template=override.get(
                "console_url_template", settings.libvirt_console_url_template
            ),
            console_key=settings.libvirt_console_key.get_secret_value().encode(),
        )
        config.check()
        return config

    def check(self) -> None:
        """Refuse templates naming fields the driver never fills (a typo would otherwise
        surface as a KeyError on the first tenancy)."""
        _check_fields("CP_LIBVIRT_URI_TEMPLATE", self.uri_template, _URI_FIELDS)
        if self.console_url_template:
            _check_fields(
                "CP_LIBVIRT_CONSOLE_URL_TEMPLATE", self.console_url_template, _CONSOLE_FIELDS
            )

    def uri_for(self, node: AllocatedNode) -> str:
        """The libvirt connection URI of the hypervisor behind a placed node."""
        return self.uri_template.format(
            hostname=node.hostname, node_id=node.node_id, region=self.region
        )


def _check_fields(name: str, template: str, allowed: frozenset[str]) -> None:
    used = {field for _, field, _, _ in Formatter().parse(template) if field is not None}
    unknown = used - allowed
    if unknown:
        raise ValueError(f"{name}: unknown fields {sorted(unknown)} (allowed: {sorted(allowed)})")
