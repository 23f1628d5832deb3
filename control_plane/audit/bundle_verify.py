"""Verifying an auditor bundle in one process, and the checks the parallel verifier shares.

verify_serial reads the whole bundle, checks it and, when something is wrong, names the
first bad sequence number and what is wrong. See control_plane.audit.bundle for the
format and control_plane.audit.bundle_parallel for the multi-process fast path.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from control_plane.audit.bundle_format import (
    Row,
    csv_text,
    decode_rows,
    expected_csv,
    line_hashes,
    links_ok,
)
from control_plane.audit.canonical import CanonicalError
from control_plane.audit.chain import GENESIS_HASH, AuditEntry, verify_chain
from control_plane.audit.merkle import Checkpoint, InclusionProof
from control_plane.audit.signing import PublicKeyRecord

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "CHECKPOINTS",
    "CSV_FILE",
    "ENTRIES",
    "MANIFEST",
    "BundleError",
    "Manifest",
    "VerifyResult",
    "check_checkpoints",
    "check_proofs",
    "load_manifest",
    "sha_file",
    "summary",
    "verify_serial",
]

BUNDLE_FORMAT = "cp-audit-bundle"
BUNDLE_VERSION = 1
ENTRIES, CSV_FILE, CHECKPOINTS, MANIFEST = (
    "entries.jsonl",
    "entries.csv",
    "checkpoints.json",
    "manifest.json",
)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    message: str
    first_bad_seq: int | None = None
    entries: int = 0


class _Entry(Protocol):
    """What the bundle checks read from an entry, parsed fast (Row) or fully (AuditEntry)."""

    @property
    def seq(self) -> int: ...
    @property
    def chain(self) -> str: ...
    @property
    def at(self) -> str: ...
    @property
    def org_id(self) -> str | None: ...
    @property
    def entry_hash(self) -> str: ...


class _Bad(Exception):
    """What is wrong with a bundle, and the first bad sequence number when there is one."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


BundleError = _Bad  # what the parallel verifier catches


def sha_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """manifest.json and checkpoints.json, parsed; entries not yet read."""

    raw: Mapping[str, Any]
    keys: list[PublicKeyRecord]
    checkpoints: list[Checkpoint]
    proofs: list[InclusionProof]
    starts: Mapping[str, Any]  # chain -> {"first_seq", "prev_hash", ...}
    org_id: str
    from_genesis: bool  # exported without --since: every chain must start at seq 1

    def start(self, chain: str) -> tuple[int, str]:
        """(first_seq, prev_hash) the bundle's part of ``chain`` starts from."""
        return int(self.starts[chain]["first_seq"]), str(self.starts[chain]["prev_hash"])


def verify_serial(
    root: Path, trusted_keys: Sequence[PublicKeyRecord] | None = None
) -> VerifyResult:
    """verify_bundle in this process."""
    try:
        return _verify(root, trusted_keys)
    except _Bad as bad:
        return VerifyResult(False, str(bad), bad.seq)


def load_manifest(root: Path, trusted_keys: Sequence[PublicKeyRecord] | None) -> Manifest:
    """Parse manifest.json and checkpoints.json and check the chain starts it lists."""
    manifest = _load_json(root / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise _Bad("manifest.json: not an audit bundle manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise _Bad(f"manifest.json: unsupported version {manifest.get('version')!r}")
    try:
        keys = list(trusted_keys) if trusted_keys is not None else _keys(manifest)
        checkpoints = _checkpoints(root, manifest)
        proofs = [InclusionProof.from_dict(p) for p in manifest["proofs"]]
        starts: dict[str, Any] = manifest["chains"]
        org_id = str(manifest["org_id"])
        from_genesis = manifest["since"] is None
    except (KeyError, TypeError, ValueError) as exc:
        raise _Bad(f"manifest.json: malformed ({exc})") from exc
    return Manifest(manifest, keys, checkpoints, proofs, starts, org_id, from_genesis)


def _verify(root: Path, trusted_keys: Sequence[PublicKeyRecord] | None) -> VerifyResult:
    m = load_manifest(root, trusted_keys)
    lines, rows = _rows(root / ENTRIES)
    by_chain = _group(rows, m.starts, m.org_id)
    check_starts(m)
    check_checkpoints(m)
    heads = check_proofs(m, by_chain)
    positions: dict[str, list[int]] = {chain: [] for chain in by_chain}
    for i, row in enumerate(rows):
        positions[row.chain].append(i)
    for chain, chain_rows in by_chain.items():
        first_seq, prev_hash = m.start(chain)
        chain_lines = [lines[i] for i in positions[chain]]
        digests = line_hashes(chain_lines)
        committed = heads.get(chain, [])
        if (
            digests is None
            or not links_ok(chain_rows, digests, first_seq, prev_hash)
            or not _heads_ok(chain_rows, first_seq, prev_hash, committed)
        ):
            _explain_chain(chain, chain_lines, first_seq, prev_hash, committed)
    _check_files(root, m.raw, rows)
    return VerifyResult(True, summary(by_chain, heads), None, len(rows))


def _heads_ok(
    rows: Sequence[Row], first_seq: int, prev_hash: str, heads: Sequence[tuple[int, str]]
) -> bool:
    """Every committed head is present with its hash (rows are proven contiguous)."""
    end = first_seq + len(rows)
    return all(
        seq < end and (rows[seq - first_seq].entry_hash if seq >= first_seq else prev_hash) == h
        for seq, h in heads
    )


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _Bad(f"{path.name}: unreadable ({exc})") from exc


def _rows(path: Path) -> tuple[list[bytes], list[Row]]:
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise _Bad(f"{path.name}: unreadable ({exc})") from exc
    decoded = decode_rows(blob, any_line_end=True)
    if decoded is not None:
        return decoded
    for number, line in enumerate(blob.splitlines(), 1):
        try:
            AuditEntry.from_dict(json.loads(line))
        except (ValueError, TypeError) as exc:
            seq = _seq_of(line)
            where = f"seq {seq}" if seq is not None else f"line {number}"
            raise _Bad(f"{path.name} {where}: malformed entry ({exc})", seq) from exc
    raise _Bad(f"{path.name}: malformed")  # pragma: no cover - some line must have failed


def _group(entries: Sequence[Row], starts: Mapping[str, Any], org_id: str) -> dict[str, list[Row]]:
    by_chain: dict[str, list[Row]] = {chain: [] for chain in starts}
    for e in entries:
        if e.org_id != org_id or e.chain not in by_chain:
            raise _Bad(f"{e.chain} seq {e.seq}: entry is not part of {org_id}'s slice", e.seq)
        by_chain[e.chain].append(e)
    return by_chain


def check_starts(m: Manifest) -> None:
    """The chains the manifest lists are the organization's and start where they may."""
    org_id, from_genesis = m.org_id, m.from_genesis
    for chain, start in m.starts.items():
        if not chain.startswith(f"{org_id}/"):
            raise _Bad(f"manifest.json: chain {chain} is not {org_id}'s")
        if not re.fullmatch(r"[0-9a-f]{64}", str(start["prev_hash"])):
            raise _Bad(f"manifest.json: {chain} prev_hash is not 64 hex digits")
        if from_genesis and (start["first_seq"] != 1 or start["prev_hash"] != GENESIS_HASH):
            raise _Bad(f"{chain}: an export without --since must start at seq 1", 1)


def _explain_chain(
    chain: str,
    lines: Sequence[bytes],
    first_seq: int,
    prev_hash: str,
    heads: Sequence[tuple[int, str]],
) -> None:
    """Slow path: re-encode every entry canonically and raise naming the first problem."""
    entries = [AuditEntry.from_dict(json.loads(line)) for line in lines]
    problem = verify_chain(
        entries, chain=chain, first_seq=first_seq, prev_hash=prev_hash, heads=heads
    )
    if problem is not None:
        raise _Bad(str(problem), problem.seq)
    for entry, line in zip(entries, lines, strict=True):
        if entry.to_json_bytes() != line:
            raise _Bad(f"{chain} seq {entry.seq}: entries.jsonl line is not canonical", entry.seq)
    raise AssertionError("fast and slow chain checks disagree")  # pragma: no cover


def _keys(manifest: Mapping[str, Any]) -> list[PublicKeyRecord]:
    return [PublicKeyRecord.from_dict(k) for k in manifest["public_keys"]]


def _checkpoints(root: Path, manifest: Mapping[str, Any]) -> list[Checkpoint]:
    raw = _load_json(root / CHECKPOINTS)
    if not isinstance(raw, list):
        raise _Bad("checkpoints.json: expected a list")
    return [Checkpoint.from_dict(c) for c in raw]


def _check_listed(manifest: Mapping[str, Any], checkpoints: Sequence[Checkpoint]) -> None:
    listed = {(r["region"], r["number"]): r["checkpoint_hash"] for r in manifest["checkpoints"]}
    found = {(c.region, c.number): c.checkpoint_hash for c in checkpoints}
    if listed != found:
        differing = set(listed) ^ set(found) or {k for k in listed if listed[k] != found[k]}
        region, number = min(differing)
        raise _Bad(f"checkpoint {region}#{number}: checkpoints.json and manifest.json disagree")


def _seq_of(line: bytes) -> int | None:
    try:
        seq = json.loads(line).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def check_checkpoints(m: Manifest) -> None:
    """Signatures, numbering and links of the checkpoints, and the manifest lists them."""
    _check_signed(m.checkpoints, m.keys, m.proofs)
    _check_listed(m.raw, m.checkpoints)


def _check_signed(
    checkpoints: Sequence[Checkpoint],
    keys: Sequence[PublicKeyRecord],
    proofs: Sequence[InclusionProof],
) -> None:
    previous: dict[str, Checkpoint] = {}
    for cp in sorted(checkpoints, key=lambda c: (c.region, c.number)):
        label = f"checkpoint {cp.region}#{cp.number}"
        seq = min((p.seq for p in proofs if (p.region, p.number) == (cp.region, cp.number)),
                  default=None)  # fmt: skip
        try:
            why = cp.check_signature(keys)
        except CanonicalError as exc:
            why = str(exc)
        if why is not None:
            raise _Bad(f"{label} (covering seq {seq}): {why}", seq)
        before = previous.get(cp.region)
        if before is not None and cp.number != before.number + 1:
            raise _Bad(f"{label}: checkpoint {cp.region}#{before.number + 1} is missing", seq)
        if before is not None and cp.prev_checkpoint_hash != before.checkpoint_hash:
            raise _Bad(f"{label}: prev_checkpoint_hash does not match {cp.region}#{before.number}")
        previous[cp.region] = cp


def check_proofs(
    m: Manifest, by_chain: Mapping[str, Sequence[_Entry]]
) -> dict[str, list[tuple[int, str]]]:
    """Each inclusion proof against its checkpoint; the (seq, entry_hash) heads they commit
    each chain to. ``by_chain`` needs only each chain's first entry."""
    checkpoints, proofs = m.checkpoints, m.proofs
    index = {(c.region, c.number): c for c in checkpoints}
    heads: dict[str, list[tuple[int, str]]] = {}
    proven: set[tuple[str, str, int]] = set()
    for p in proofs:
        cp = index.get((p.region, p.number))
        label = f"{p.chain} seq {p.seq}"
        if cp is None:
            raise _Bad(f"{label}: proof names absent checkpoint {p.region}#{p.number}", p.seq)
        if p.chain not in by_chain or not p.chain.endswith(f"/{cp.region}"):
            raise _Bad(f"{label}: proof is not for a chain of this bundle in {cp.region}", p.seq)
        if not p.verify(cp):
            raise _Bad(
                f"{label}: inclusion proof does not match checkpoint {cp.region}#{cp.number}",
                p.seq,
            )
        heads.setdefault(p.chain, []).append((p.seq, p.entry_hash))
        proven.add((p.chain, p.region, p.number))
    # A dropped proof would hide a cut tail: every checkpoint taken after a chain began
    # must carry that chain's head.
    for chain, entries in by_chain.items():
        began = entries[0].at if entries and entries[0].seq == 1 else ""
        for cp in checkpoints:
            needed = chain.endswith(f"/{cp.region}") and began < cp.at
            if needed and (chain, cp.region, cp.number) not in proven:
                raise _Bad(f"{chain}: no inclusion proof for checkpoint {cp.region}#{cp.number}")
    return heads


def _check_files(root: Path, manifest: Mapping[str, Any], entries: Sequence[Row]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ENTRIES, CSV_FILE, CHECKPOINTS}:
        raise _Bad("manifest.json: file list is incomplete")
    for name, digest in sorted(files.items()):
        if sha_file(root / name) != digest:
            seq = _first_csv_difference(root, entries) if name == CSV_FILE else None
            where = f" (first differing row: seq {seq})" if seq is not None else ""
            raise _Bad(f"{name}: SHA-256 does not match manifest.json{where}", seq)
    # The manifest is not signed: a CSV rewritten together with its hash must still match.
    rendered = expected_csv(entries)
    if hashlib.sha256(rendered).hexdigest() != files[CSV_FILE]:
        seq = _first_csv_difference(root, entries)
        raise _Bad(
            f"entries.csv does not match entries.jsonl (first differing row: seq {seq})", seq
        )


def _first_csv_difference(root: Path, entries: Sequence[Row]) -> int | None:
    expected = csv_text(e.cells() for e in entries).splitlines()
    found = (root / CSV_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    for i, (want, got) in enumerate(zip(expected, found, strict=False)):
        if want != got:
            return entries[i - 1].seq if i > 0 else None
    if len(found) != len(expected):
        shorter = min(len(found), len(expected))
        return entries[shorter - 1].seq if 0 < shorter <= len(entries) else None
    return None


def summary(
    by_chain: Mapping[str, Sequence[_Entry]], heads: Mapping[str, list[tuple[int, str]]]
) -> str:
    parts = []
    for chain, entries in sorted(by_chain.items()):
        if not entries:
            parts.append(f"{chain}: no entries in range")
            continue
        anchored = max((seq for seq, _ in heads.get(chain, ())), default=None)
        tail = entries[-1].seq - (anchored if anchored is not None else entries[0].seq - 1)
        note = f", {tail} after the last checkpoint (hash-linked, not yet signed)" if tail else ""
        parts.append(f"{chain}: seq {entries[0].seq}..{entries[-1].seq} intact{note}")
    return "bundle intact: " + "; ".join(parts)
