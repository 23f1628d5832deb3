"""The libvirt domain XML of one VM, built from a plain :class:`DomainSpec`.

Pure: no libvirt import, no I/O, so the XML is unit-tested and schema-checked
(``virt-xml-validate``) without a hypervisor. The disk and the cloud-init seed are named
as storage-pool volumes (``<disk type='volume'>``), so the XML never carries a node's file
paths. The control plane's own facts (tenancy, organization, spec fingerprint, labels)
live in ``<metadata>`` under :data:`NAMESPACE`, where libvirt keeps them untouched and the
driver reads them back to tell whether a defined domain matches the placement.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

__all__ = [
    "NAMESPACE",
    "DomainSpec",
    "PciAddress",
    "build_domain_xml",
    "build_volume_xml",
    "read_metadata",
]

NAMESPACE = "https://sovereign-control-plane.dev/xmlns/libvirt/tenancy/1"
PREFIX = "cp"
_PCI = re.compile(
    r"^(?P<domain>[0-9a-fA-F]{4}):(?P<bus>[0-9a-fA-F]{2}):(?P<slot>[0-1][0-9a-fA-F])"
    r"\.(?P<function>[0-7])$"
)


@dataclass(frozen=True, slots=True)
class PciAddress:
    """A host PCI function, as the inventory records it (``0000:3b:00.0``)."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """Raise ValueError unless ``text`` is a full ``DDDD:BB:SS.F`` address."""
        match = _PCI.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a PCI address (DDDD:BB:SS.F)")
        return cls(
            int(match["domain"], 16),
            int(match["bus"], 16),
            int(match["slot"], 16),
            int(match["function"]),
        )

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function}"


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """Everything that decides one VM's shape; its fingerprint changes when any does."""

    name: str
    tenancy_id: str
    org_id: str
    region: str
    vcpus: int
    memory_mib: int
    disk_pool: str
    disk_volume: str
    seed_volume: str
    network: str
    gpus: tuple[PciAddress, ...] = ()
    # host CPUs next to the GPUs (a cpuset) and their NUMA nodes, when the inventory knows
    cpuset: str | None = None
    numa_nodes: tuple[int, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """A short digest of the spec, kept in the domain's metadata."""
        data = asdict(self)
        data["labels"] = dict(sorted(self.labels.items()))
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_domain_xml(spec: DomainSpec) -> str:
    """The domain XML libvirt defines for ``spec``."""
    ET.register_namespace(PREFIX, NAMESPACE)
    root = ET.Element("domain", type="kvm")
    _text(root, "name", spec.name)
    _text(root, "title", f"tenancy {spec.tenancy_id}")
    root.append(_metadata(spec))
    _text(root, "memory", str(spec.memory_mib), unit="MiB")
    vcpu = _text(root, "vcpu", str(spec.vcpus), placement="static")
    if spec.cpuset:
        vcpu.set("cpuset", spec.cpuset)
        root.append(_cputune(spec.vcpus, spec.cpuset))
    if spec.numa_nodes:
        numatune = ET.SubElement(root, "numatune")
        nodeset = ",".join(str(n) for n in spec.numa_nodes)
        ET.SubElement(numatune, "memory", mode="strict", nodeset=nodeset)
    root.append(_os())
    features = ET.SubElement(root, "features")
    ET.SubElement(features, "acpi")  # the guest hears the graceful shutdown
    ET.SubElement(features, "apic")
    ET.SubElement(root, "cpu", mode="host-passthrough")
    _text(root, "on_poweroff", "destroy")
    _text(root, "on_reboot", "restart")
    _text(root, "on_crash", "destroy")
    root.append(_devices(spec))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def read_metadata(element_xml: str) -> dict[str, str]:
    """The fields of the driver's ``<metadata>`` element as libvirt returns it (asked for
    by namespace, it answers the element without one), labels left out."""
    element = ET.fromstring(element_xml)  # noqa: S314 -- written by this module, read from libvirt
    found = {_local(child.tag): (child.text or "") for child in element}
    found.pop("label", None)
    return found


def _metadata(spec: DomainSpec) -> ET.Element:
    metadata = ET.Element("metadata")
    tenancy = ET.SubElement(metadata, f"{{{NAMESPACE}}}tenancy")
    _text(tenancy, f"{{{NAMESPACE}}}id", spec.tenancy_id)
    _text(tenancy, f"{{{NAMESPACE}}}org", spec.org_id)
    _text(tenancy, f"{{{NAMESPACE}}}region", spec.region)
    _text(tenancy, f"{{{NAMESPACE}}}spec", spec.fingerprint)
    for key, value in sorted(spec.labels.items()):
        _text(tenancy, f"{{{NAMESPACE}}}label", value, key=key)
    return metadata


def _cputune(vcpus: int, cpuset: str) -> ET.Element:
    """Every vCPU (and the emulator threads) floats over the host CPUs next to the GPUs.

    Not one host CPU per vCPU: tenancies sharing a node would need a CPU allocator the
    inventory does not have; keeping them on the GPUs' NUMA nodes is what matters for
    host-to-device copies.
    """
    cputune = ET.Element("cputune")
    for index in range(vcpus):
        ET.SubElement(cputune, "vcpupin", vcpu=str(index), cpuset=cpuset)
    ET.SubElement(cputune, "emulatorpin", cpuset=cpuset)
    return cputune


def _os() -> ET.Element:
    # UEFI: GPUs with large BARs need it; the firmware's variables (nvram) are removed
    # together with the domain.
    os_element = ET.Element("os", firmware="efi")
    _text(os_element, "type", "hvm", arch="x86_64", machine="q35")
    ET.SubElement(os_element, "boot", dev="hd")
    return os_element


def _devices(spec: DomainSpec) -> ET.Element:
    devices = ET.Element("devices")
    disk = ET.SubElement(devices, "disk", type="volume", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    ET.SubElement(disk, "source", pool=spec.disk_pool, volume=spec.disk_volume)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    seed = ET.SubElement(devices, "disk", type="volume", device="cdrom")
    ET.SubElement(seed, "driver", name="qemu", type="raw")
    ET.SubElement(seed, "source", pool=spec.disk_pool, volume=spec.seed_volume)
    ET.SubElement(seed, "target", dev="sda", bus="sata")
    ET.SubElement(seed, "readonly")
    interface = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(interface, "source", network=spec.network)
    ET.SubElement(interface, "model", type="virtio")
    for gpu in spec.gpus:
        devices.append(_hostdev(gpu))
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    # only the node itself reaches the VNC server; people come through the console proxy
    ET.SubElement(devices, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="virtio")
    return devices


def _hostdev(gpu: PciAddress) -> ET.Element:
    """A whole GPU by PCI passthrough; ``managed`` lets libvirt bind it to vfio-pci."""
    hostdev = ET.Element("hostdev", mode="subsystem", type="pci", managed="yes")
    source = ET.SubElement(hostdev, "source")
    ET.SubElement(
        source,
        "address",
        domain=f"0x{gpu.domain:04x}",
        bus=f"0x{gpu.bus:02x}",
        slot=f"0x{gpu.slot:02x}",
        function=f"0x{gpu.function:x}",
    )
    return hostdev


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def build_volume_xml(name: str, capacity_bytes: int, fmt: str) -> str:
    """A storage volume's XML (a cloned boot disk, or the cloud-init seed)."""
    volume = ET.Element("volume")
    _text(volume, "name", name)
    _text(volume, "capacity", str(capacity_bytes), unit="bytes")
    target = ET.SubElement(volume, "target")
    ET.SubElement(target, "format", type=fmt)
    return ET.tostring(volume, encoding="unicode")
