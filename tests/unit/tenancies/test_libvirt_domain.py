"""The libvirt driver's pure parts: placement -> VM spec -> domain XML, the cloud-init seed
and the console tokens (no libvirt needed)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pycdlib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    PermanentError,
    TenancyKind,
)
from control_plane.tenancies.drivers.libvirt import console, seed
from control_plane.tenancies.drivers.libvirt.config import LibvirtConfig, Sizing
from control_plane.tenancies.drivers.libvirt.domain import (
    NAMESPACE,
    PciAddress,
    build_domain_xml,
    read_metadata,
)
from control_plane.tenancies.drivers.libvirt.plan import check_allocation, plan_vm, size

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv2 alice@laptop"
CONFIG = LibvirtConfig(region="ca-qc-1", default_image="ubuntu-24.04", sizing=Sizing(8, 64, 2, 4))


def _node(**changes: object) -> AllocatedNode:
    node = AllocatedNode(
        node_id="node_1", hostname="gpu-001", bmc_endpoint="", rack="r1", gpu_indices=(0, 1),
        gpu_pci_addresses=("0000:3b:00.0", "0000:3c:00.0"), gpu_numa_nodes=(0, 0),
        numa_cpus={0: "0-31", 1: "32-63"},
    )  # fmt: skip
    return replace(node, **changes)  # type: ignore[arg-type]


def _allocation(*nodes: AllocatedNode) -> Allocation:
    return Allocation(
        tenancy_id="ten_abc", org_id="org_x", region="ca-qc-1", kind=TenancyKind.VM,
        gpu_model="h100-sxm", nodes=nodes or (_node(),), ssh_public_keys=(KEY,),
        labels={"team": "vision"},
    )  # fmt: skip


def _xml(allocation: Allocation) -> ET.Element:
    spec = plan_vm(allocation, allocation.nodes[0], CONFIG).spec
    return ET.fromstring(build_domain_xml(spec))  # noqa: S314 -- built by the test itself


class TestPciAddress:
    def test_round_trips(self) -> None:
        assert str(PciAddress.parse("0000:3b:00.0")) == "0000:3b:00.0"

    @pytest.mark.parametrize("text", ["3b:00.0", "0000:3b:00", "0000:3b:00.8", "xyz", ""])
    def test_refuses_partial_addresses(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a PCI address"):
            PciAddress.parse(text)


class TestSizing:
    def test_scales_with_gpus(self) -> None:
        assert size(_node(), CONFIG.sizing) == (16, 128 * 1024)

    def test_has_floors(self) -> None:
        assert size(_node(gpu_indices=(), gpu_pci_addresses=()), CONFIG.sizing) == (2, 4096)

    @given(st.integers(min_value=1, max_value=8))
    def test_never_below_the_floors_and_grows_with_gpus(self, gpus: int) -> None:
        node = _node(gpu_indices=tuple(range(gpus)))
        vcpus, memory = size(node, CONFIG.sizing)
        assert vcpus == max(2, 8 * gpus)
        assert memory == max(4, 64 * gpus) * 1024


class TestDomainXml:
    def test_passes_the_placed_gpus_through(self) -> None:
        root = _xml(_allocation())
        hostdevs = root.findall("./devices/hostdev")
        assert [(h.get("mode"), h.get("type"), h.get("managed")) for h in hostdevs] == [
            ("subsystem", "pci", "yes")
        ] * 2
        buses = [a.get("bus") for a in root.findall("./devices/hostdev/source/address")]
        assert buses == ["0x3b", "0x3c"]

    def test_pins_vcpus_and_memory_next_to_the_gpus(self) -> None:
        root = _xml(_allocation())
        assert root.find("vcpu").get("cpuset") == "0-31"  # type: ignore[union-attr]
        assert {p.get("cpuset") for p in root.findall("./cputune/vcpupin")} == {"0-31"}
        assert root.find("./numatune/memory").get("nodeset") == "0"  # type: ignore[union-attr]

    def test_no_pinning_when_a_gpu_numa_node_is_unknown(self) -> None:
        root = _xml(_allocation(_node(gpu_numa_nodes=(0, None))))
        assert root.find("cputune") is None
        assert root.find("numatune") is None

    def test_metadata_carries_tenancy_org_and_labels_under_the_namespace(self) -> None:
        root = _xml(_allocation())
        tenancy = root.find(f"./metadata/{{{NAMESPACE}}}tenancy")
        assert tenancy is not None
        assert read_metadata(ET.tostring(tenancy, encoding="unicode"))["org"] == "org_x"
        labels = tenancy.findall(f"{{{NAMESPACE}}}label")
        assert [(label.get("key"), label.text) for label in labels] == [("team", "vision")]

    def test_fingerprint_follows_the_placement(self) -> None:
        one = plan_vm(_allocation(), _node(), CONFIG).spec.fingerprint
        same = plan_vm(_allocation(), _node(), CONFIG).spec.fingerprint
        bigger = _node(
            gpu_indices=(0, 1, 2),
            gpu_pci_addresses=("0000:3b:00.0", "0000:3c:00.0", "0000:3d:00.0"),
            gpu_numa_nodes=(0, 0, 0),
        )
        assert one == same
        assert plan_vm(_allocation(bigger), bigger, CONFIG).spec.fingerprint != one


class TestRefusals:
    def test_a_missing_pci_address(self) -> None:
        with pytest.raises(PermanentError, match="no PCI address for every placed GPU"):
            check_allocation(_allocation(_node(gpu_pci_addresses=("0000:3b:00.0",))), CONFIG)

    def test_a_gpu_share(self) -> None:
        with pytest.raises(PermanentError, match="mediated devices"):
            check_allocation(_allocation(_node(gpu_milli=250)), CONFIG)

    def test_duplicate_addresses(self) -> None:
        node = _node(gpu_pci_addresses=("0000:3b:00.0", "0000:3b:00.0"))
        with pytest.raises(PermanentError, match="share a PCI address"):
            check_allocation(_allocation(node), CONFIG)

    def test_no_image(self) -> None:
        with pytest.raises(PermanentError, match="needs an image"):
            check_allocation(_allocation(), replace(CONFIG, default_image=""))

    def test_a_key_smuggling_a_second_line(self) -> None:
        allocation = replace(_allocation(), ssh_public_keys=(KEY + "\nssh-rsa AAAA evil",))
        with pytest.raises(PermanentError, match="SSH public key"):
            check_allocation(allocation, CONFIG)


class TestSeed:
    def test_user_data_has_the_keys_and_no_password(self) -> None:
        text = seed.user_data(hostname="ten-abc", user="tenant", ssh_keys=[KEY])
        assert text.startswith("#cloud-config\n")
        assert KEY in text
        assert "ssh_pwauth: false" in text
        assert "lock_passwd: true" in text
        assert "passwd:" not in text.replace("lock_passwd", "")
        assert "chpasswd" not in text

    def test_image_is_a_cidata_iso_with_both_files(self) -> None:
        image = seed.seed_image({"user-data": "#cloud-config\n", "meta-data": "instance-id: x\n"})
        iso = pycdlib.PyCdlib()
        iso.open_fp(io.BytesIO(image))
        try:
            assert iso.pvd.volume_identifier.decode().strip() == "cidata"
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/user-data")
            assert out.getvalue() == b"#cloud-config\n"
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, joliet_path="/meta-data")
            assert out.getvalue() == b"instance-id: x\n"
        finally:
            iso.close()


class TestConsoleToken:
    NOW = datetime(2030, 1, 1, tzinfo=UTC)

    def _claims(self) -> console.ConsoleClaims:
        return console.ConsoleClaims("ten_abc", "ten_abc", "gpu-001", self.NOW + timedelta(60))

    def test_verifies_with_the_key_until_it_expires(self) -> None:
        token = console.sign(self._claims(), b"k")
        assert console.verify(token, b"k", self.NOW) == self._claims()
        with pytest.raises(console.InvalidToken, match="expired"):
            console.verify(token, b"k", self.NOW + timedelta(days=61))

    @pytest.mark.parametrize("mangle", [lambda t: "x" + t, lambda t: t[:-2], lambda t: "a.b.c"])
    def test_refuses_tampering(self, mangle: object) -> None:
        token = console.sign(self._claims(), b"k")
        with pytest.raises(console.InvalidToken):
            console.verify(mangle(token), b"k", self.NOW)  # type: ignore[operator]


class TestConfig:
    def test_reads_settings_with_region_overrides(self) -> None:
        settings = Settings(
            libvirt_regions={"ca-qc-1": {"uri_template": "qemu+tls://{hostname}/system"}},
            libvirt_vcpus_per_gpu=12,
        )
        config = LibvirtConfig.from_settings(settings, "ca-qc-1")
        assert config.uri_for(_node()) == "qemu+tls://gpu-001/system"
        assert config.sizing.vcpus_per_gpu == 12

    def test_refuses_unknown_template_fields(self) -> None:
        with pytest.raises(ValueError, match="unknown fields"):
            LibvirtConfig.from_settings(Settings(libvirt_uri_template="qemu://{host}/"), "x")
