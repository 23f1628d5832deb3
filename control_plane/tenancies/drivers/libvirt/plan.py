"""From a placement to the VMs it becomes: names, sizes, GPUs and CPU placement.

Pure (no libvirt), so every refusal :meth:`LibvirtDriver.validate` makes before a side
effect is decided here and unit-tested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from control_plane.tenancies.drivers.base import AllocatedNode, Allocation, PermanentError
from control_plane.tenancies.drivers.libvirt.config import LibvirtConfig, Sizing
from control_plane.tenancies.drivers.libvirt.domain import DomainSpec, PciAddress

__all__ = [
    "VmPlan",
    "check_allocation",
    "domain_name",
    "guest_hostname",
    "image_name",
    "plan_vm",
    "size",
]

# A libvirt domain and volume name that is also safe in a file name and a URL.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SSH_KEY = re.compile(r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\r\n]*)?$")
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass(frozen=True, slots=True)
class VmPlan:
    """One node's VM: its domain and the volumes it uses."""

    allocation: Allocation
    node: AllocatedNode
    uri: str
    image: str
    spec: DomainSpec

    @property
    def disk(self) -> str:
        return self.spec.disk_volume

    @property
    def seed(self) -> str:
        return self.spec.seed_volume


def domain_name(allocation: Allocation) -> str:
    """The domain's name on every placed node: the tenancy id (one domain per node, each
    node its own hypervisor, so the name never collides)."""
    if not _NAME.fullmatch(allocation.tenancy_id):
        raise PermanentError(f"tenancy id {allocation.tenancy_id!r} cannot name a libvirt domain")
    return allocation.tenancy_id


def guest_hostname(allocation: Allocation, node: AllocatedNode) -> str:
    """The guest's host name: the tenancy id as a DNS label, numbered on multi-node VMs."""
    base = allocation.tenancy_id.lower().replace("_", "-").replace(".", "-")
    if len(allocation.nodes) == 1:
        return base
    return f"{base}-{allocation.nodes.index(node)}"


def image_name(allocation: Allocation, config: LibvirtConfig) -> str:
    image = allocation.image or config.default_image
    if not image:
        raise PermanentError("a VM tenancy needs an image (none named, no default configured)")
    if not _IMAGE.fullmatch(image):
        raise PermanentError(f"{image!r} cannot name an image volume")
    return image


def check_allocation(allocation: Allocation, config: LibvirtConfig) -> None:
    """Refuse what cannot become VMs, before any side effect."""
    domain_name(allocation)
    image_name(allocation, config)
    if not allocation.nodes or allocation.gpu_count < 1:
        raise PermanentError("a VM tenancy needs at least one GPU on one node")
    if len({node.hostname for node in allocation.nodes}) != len(allocation.nodes):
        raise PermanentError("a VM tenancy gets one VM per node: a node is listed twice")
    for key in allocation.ssh_public_keys:
        if not _SSH_KEY.fullmatch(key.strip()):
            raise PermanentError("an SSH public key is not a single OpenSSH public key line")
    for node in allocation.nodes:
        gpu_addresses(node)
        _numa_cpus(node)


def gpu_addresses(node: AllocatedNode) -> tuple[PciAddress, ...]:
    """The node's placed GPUs as PCI functions to pass through."""
    if node.gpu_milli != 1000:
        raise PermanentError(
            f"{node.hostname}: a VM takes whole GPUs by PCI passthrough; a "
            f"{node.gpu_milli / 10:g}% GPU share needs mediated devices (vGPU/MIG), "
            "which this driver does not build"
        )
    if len(node.gpu_pci_addresses) != len(node.gpu_indices):
        raise PermanentError(
            f"{node.hostname}: the inventory has no PCI address for every placed GPU "
            f"(indices {list(node.gpu_indices)}); record them before placing VMs there"
        )
    found = []
    for index, text in zip(node.gpu_indices, node.gpu_pci_addresses, strict=True):
        if not text:
            raise PermanentError(f"{node.hostname}: GPU {index} has no PCI address recorded")
        try:
            found.append(PciAddress.parse(text))
        except ValueError as exc:
            raise PermanentError(f"{node.hostname}: GPU {index}: {exc}") from None
    if len(set(found)) != len(found):
        raise PermanentError(f"{node.hostname}: two placed GPUs share a PCI address")
    return tuple(found)


def size(node: AllocatedNode, sizing: Sizing) -> tuple[int, int]:
    """(vCPUs, memory MiB) for the node's GPU share: per-GPU ratios, with floors."""
    gpus = len(node.gpu_indices) * node.gpu_milli / 1000
    vcpus = max(sizing.min_vcpus, round(sizing.vcpus_per_gpu * gpus))
    memory_gib = max(sizing.min_memory_gib, sizing.memory_gib_per_gpu * gpus)
    return vcpus, round(memory_gib * 1024)


def plan_vm(allocation: Allocation, node: AllocatedNode, config: LibvirtConfig) -> VmPlan:
    """The VM ``allocation`` puts on ``node``."""
    name = domain_name(allocation)
    vcpus, memory_mib = size(node, config.sizing)
    numa_nodes, cpuset = _numa_cpus(node)
    spec = DomainSpec(
        name=name,
        tenancy_id=allocation.tenancy_id,
        org_id=allocation.org_id,
        region=allocation.region,
        vcpus=vcpus,
        memory_mib=memory_mib,
        disk_pool=config.disk_pool,
        disk_volume=f"{name}.qcow2",
        seed_volume=f"{name}-seed.iso",
        network=config.network,
        gpus=gpu_addresses(node),
        cpuset=cpuset,
        numa_nodes=numa_nodes,
        labels=dict(allocation.labels),
    )
    return VmPlan(allocation, node, config.uri_for(node), image_name(allocation, config), spec)


def _numa_cpus(node: AllocatedNode) -> tuple[tuple[int, ...], str | None]:
    """The NUMA nodes of the placed GPUs and their host CPUs, when all of them are known;
    otherwise no pinning at all (half-known placement would pin to the wrong socket)."""
    numa = node.gpu_numa_nodes
    if len(numa) != len(node.gpu_indices) or any(n is None for n in numa):
        return (), None
    nodes = tuple(sorted({n for n in numa if n is not None}))
    cpusets = [node.numa_cpus.get(n) for n in nodes]
    if any(not cpus for cpus in cpusets):
        return nodes, None
    cpuset = ",".join(c for c in cpusets if c)
    if not _CPUSET.fullmatch(cpuset):
        raise PermanentError(f"{node.hostname}: NUMA cpuset {cpuset!r} is not a CPU list")
    return nodes, cpuset
