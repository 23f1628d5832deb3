"""Parse node enrolment files (CSV or YAML) into validated rows, all-or-nothing.

CSV columns: hostname, region, site, rack, bmc_endpoint, gpu_model, gpu_count,
firmware_version, driver_version, gpu_uuids (``;``-separated, one per GPU),
nvlink_domain (optional, shared by the node's GPUs), gpu_pci_addresses (optional,
``;``-separated in GPU order, e.g. ``0000:3b:00.0``; needed for VM passthrough).
YAML: a list of mappings with the same keys, or ``gpus: [{uuid, index, nvlink_domain,
pci_address, numa_node}]``, and optionally ``numa_cpus: {0: "0-31", 1: "32-63"}`` (the
host CPUs of each NUMA node, for pinning VMs next to their GPUs).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from control_plane.errors import FieldError

REQUIRED = (
    "hostname",
    "region",
    "site",
    "rack",
    "bmc_endpoint",
    "gpu_model",
    "gpu_count",
    "firmware_version",
    "driver_version",
)
OPTIONAL = ("gpu_uuids", "nvlink_domain", "gpus", "gpu_pci_addresses", "numa_cpus")
MAX_ROWS = 10_000
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_TOKEN = re.compile(r"^[A-Za-z0-9._:/+-]{1,64}$")
_UUID = re.compile(r"^GPU-[0-9a-fA-F-]{8,60}$")
_PCI = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$")
_CPUSET = re.compile(r"^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*$")
_BMC = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(?::\d{1,5})?(?:/[^\s]*)?$")


@dataclass(frozen=True)
class GpuRow:
    uuid: str
    index: int
    nvlink_domain: str | None
    pci_address: str | None = None
    numa_node: int | None = None


@dataclass(frozen=True)
class NodeRow:
    line: int
    hostname: str
    region: str
    site: str
    rack: str
    bmc_endpoint: str
    gpu_model: str
    firmware_version: str
    driver_version: str
    gpus: tuple[GpuRow, ...]
    numa_cpus: Mapping[str, str] = field(default_factory=dict)


class ImportRejected(Exception):
    """The whole file is refused; ``errors`` name the row and field of each problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


def parse(fmt: str, content: str) -> list[NodeRow]:
    """Parse and validate every row; raise ImportRejected listing the bad rows."""
    raw = _csv_rows(content) if fmt == "csv" else _yaml_rows(content)
    rows: list[NodeRow] = []
    errors: list[FieldError] = []
    for line, record in raw:
        try:
            rows.append(_row(line, record))
        except _RowError as exc:
            errors.append(FieldError(f"row {line}: {exc.field}", exc.reason))
    errors.extend(_duplicates(rows))
    if not rows and not errors:
        errors.append(FieldError("content", "no nodes in the file"))
    if errors:
        raise ImportRejected(errors[:100])
    return rows


class _RowError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _csv_rows(content: str) -> Iterable[tuple[int, Mapping[str, Any]]]:
    try:
        return _read_csv(csv.DictReader(io.StringIO(content, newline="")))
    except csv.Error as exc:  # e.g. a stray quote or NUL: refuse the file, never a 500
        raise ImportRejected([FieldError("content", f"not valid CSV: {exc}")]) from exc


def _read_csv(reader: csv.DictReader[str]) -> list[tuple[int, Mapping[str, Any]]]:
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        problems = [FieldError("header", f"missing column {c}") for c in missing]
        problems += [FieldError("header", f"unknown column {c}") for c in unknown]
        raise ImportRejected(problems)
    reader.fieldnames = header
    out: list[tuple[int, Mapping[str, Any]]] = []
    for number, record in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise ImportRejected([FieldError("content", f"more than {MAX_ROWS} rows")])
        if None in record:
            raise ImportRejected([FieldError(f"row {number}", "more values than columns")])
        out.append((number, record))
    return out


def _yaml_rows(content: str) -> Iterable[tuple[int, Mapping[str, Any]]]:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "content"
        raise ImportRejected([FieldError(where, "not valid YAML")]) from exc
    if isinstance(data, dict) and "nodes" in data:
        data = data["nodes"]
    if not isinstance(data, list):
        raise ImportRejected([FieldError("content", "expected a list of nodes")])
    if len(data) > MAX_ROWS:
        raise ImportRejected([FieldError("content", f"more than {MAX_ROWS} rows")])
    out = []
    for number, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise ImportRejected([FieldError(f"row {number}", "expected a mapping")])
        unknown = [k for k in record if k not in REQUIRED + OPTIONAL]
        if unknown:
            raise ImportRejected([FieldError(f"row {number}: {unknown[0]}", "unknown field")])
        out.append((number, record))
    return out


def _text(record: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = record.get(key)
    if value is None or str(value).strip() == "":
        raise _RowError(key, "required")
    text = str(value).strip()
    if not pattern.match(text):
        raise _RowError(key, f"invalid value {text[:40]!r}")
    return text


def _row(line: int, record: Mapping[str, Any]) -> NodeRow:
    hostname = _text(record, "hostname", _HOSTNAME)
    try:
        count = int(str(record.get("gpu_count", "")).strip())
    except ValueError:
        raise _RowError("gpu_count", "must be a whole number") from None
    if not 1 <= count <= 64:
        raise _RowError("gpu_count", "must be between 1 and 64")
    return NodeRow(
        line=line,
        hostname=hostname,
        region=_text(record, "region", _TOKEN),
        site=_text(record, "site", _TOKEN),
        rack=_text(record, "rack", _TOKEN),
        bmc_endpoint=_text(record, "bmc_endpoint", _BMC),
        gpu_model=_text(record, "gpu_model", _TOKEN),
        firmware_version=_text(record, "firmware_version", _TOKEN),
        driver_version=_text(record, "driver_version", _TOKEN),
        gpus=_gpus(record, count),
        numa_cpus=_numa_cpus(record.get("numa_cpus")),
    )


def _numa_cpus(value: Any) -> dict[str, str]:
    """``{0: "0-31", 1: "32-63"}``: NUMA node number -> cpuset of its host CPUs."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise _RowError("numa_cpus", "expected a mapping of NUMA node to cpuset")
    out: dict[str, str] = {}
    for node, cpus in value.items():
        if not str(node).isdigit() or not _CPUSET.match(str(cpus)):
            raise _RowError(f"numa_cpus.{node}", "expected a NUMA node number and a cpuset")
        out[str(int(str(node)))] = str(cpus)
    return out


def _pci(value: Any, field: str) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().lower()
    if not _PCI.match(text):
        raise _RowError(field, f"invalid PCI address {text[:20]!r} (e.g. 0000:3b:00.0)")
    return text


def _gpus(record: Mapping[str, Any], count: int) -> tuple[GpuRow, ...]:
    if record.get("gpus") is not None:
        return _gpu_list(record["gpus"], count)
    uuids = [u.strip() for u in str(record.get("gpu_uuids") or "").split(";") if u.strip()]
    if len(uuids) != count:
        raise _RowError("gpu_uuids", f"expected {count} GPU UUIDs separated by ';'")
    for uuid in uuids:
        if not _UUID.match(uuid):
            raise _RowError("gpu_uuids", f"invalid GPU UUID {uuid[:40]!r}")
    domain_value = record.get("nvlink_domain")
    domain = str(domain_value).strip() if domain_value else None
    if domain and not _TOKEN.match(domain):
        raise _RowError("nvlink_domain", "invalid value")
    pcis = [a.strip() for a in str(record.get("gpu_pci_addresses") or "").split(";") if a.strip()]
    if pcis and len(pcis) != count:
        raise _RowError("gpu_pci_addresses", f"expected {count} PCI addresses separated by ';'")
    addresses = [_pci(a, "gpu_pci_addresses") for a in pcis] or [None] * count
    return tuple(GpuRow(uuid, i, domain, addresses[i]) for i, uuid in enumerate(uuids))


def _gpu_list(items: Any, count: int) -> tuple[GpuRow, ...]:
    """The YAML form: ``gpus: [{uuid, index, nvlink_domain, pci_address, numa_node}]``."""
    if not isinstance(items, list) or len(items) != count:
        raise _RowError("gpus", f"expected a list of {count} GPUs")
    gpus = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _RowError(f"gpus[{i}]", "expected a mapping")
        try:
            uuid = _text(item, "uuid", _UUID)
        except _RowError as exc:
            raise _RowError(f"gpus[{i}].{exc.field}", exc.reason) from None
        index = item.get("index", i)
        if not isinstance(index, int) or not 0 <= index < count:
            raise _RowError(f"gpus[{i}].index", f"must be 0..{count - 1}")
        domain = item.get("nvlink_domain")
        numa = item.get("numa_node")
        if numa is not None and (not isinstance(numa, int) or not 0 <= numa < 16):
            raise _RowError(f"gpus[{i}].numa_node", "must be 0..15")
        pci = _pci(item.get("pci_address"), f"gpus[{i}].pci_address")
        gpus.append(GpuRow(uuid, index, str(domain) if domain else None, pci, numa))
    if len({g.index for g in gpus}) != count:
        raise _RowError("gpus", "GPU indexes repeat")
    addresses = [g.pci_address for g in gpus if g.pci_address]
    if len(set(addresses)) != len(addresses):
        raise _RowError("gpus", "PCI addresses repeat")
    return tuple(gpus)


def _duplicates(rows: list[NodeRow]) -> list[FieldError]:
    errors: list[FieldError] = []
    hosts: dict[str, int] = {}
    uuids: dict[str, int] = {}
    for row in rows:
        if row.hostname in hosts:
            errors.append(
                FieldError(f"row {row.line}: hostname", f"repeats row {hosts[row.hostname]}")
            )
        hosts.setdefault(row.hostname, row.line)
        for gpu in row.gpus:
            if gpu.uuid in uuids:
                errors.append(
                    FieldError(
                        f"row {row.line}: gpu uuid", f"{gpu.uuid} repeats row {uuids[gpu.uuid]}"
                    )
                )
            uuids.setdefault(gpu.uuid, row.line)
    return errors
