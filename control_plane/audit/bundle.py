"""Auditor export bundles: write one organization's slice, verify it offline.

A bundle is a directory: entries.jsonl (canonical entries, one per line), entries.csv
(the same for people), checkpoints.json (signed checkpoints) and manifest.json (file
hashes, chain starts, checkpoint references, public keys, inclusion proofs). verify_bundle
needs nothing but the directory (and optionally public keys obtained independently).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec

from control_plane.audit.canonical import CanonicalError, canonical_json, format_time
from control_plane.audit.chain import ENTRY_DOMAIN, GENESIS_HASH, AuditEntry, verify_chain
from control_plane.audit.merkle import Checkpoint, InclusionProof
from control_plane.audit.signing import PublicKeyRecord

__all__ = ["BUNDLE_FORMAT", "CSV_COLUMNS", "VerifyResult", "verify_bundle", "write_bundle"]

BUNDLE_FORMAT = "cp-audit-bundle"
BUNDLE_VERSION = 1
ENTRIES, CSV_FILE, CHECKPOINTS, MANIFEST = (
    "entries.jsonl",
    "entries.csv",
    "checkpoints.json",
    "manifest.json",
)
CSV_COLUMNS = (
    "seq", "chain", "at", "actor_kind", "actor_id", "org_id", "action", "target_type",
    "target_id", "request_id", "source_address", "outcome", "decision_ref", "payload_hash",
    "prev_hash", "entry_hash",
)  # fmt: skip
_FORMULA_START = frozenset("=+-@\t\r")
_FORMULA_BYTES = frozenset(c.encode() for c in _FORMULA_START)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    message: str
    first_bad_seq: int | None = None
    entries: int = 0


class _Entry(Protocol):
    """What the bundle checks read from an entry, parsed fast (_Row) or fully (AuditEntry)."""

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


# gc=False: rows hold only strings, ints and each other, so they cannot form cycles, and
# untracked they decode about three times faster (no garbage collections while a million
# rows pile up).
# Length only: a regex per field halves decoding speed. entry_hash and prev_hash are
# proven hex by the hash comparisons, payload_hash by one regex over all rows (_rows).
_Hex64 = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
_ALL_HEX = re.compile(r"[0-9a-f]*")


class _Actor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    kind: str
    id: str | None


class _Target(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: str | None
    id: str | None


class _Row(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """entries.jsonl line, decoded and type-checked in C; hashing uses the raw line bytes."""

    seq: Annotated[int, msgspec.Meta(ge=1)]
    chain: str
    at: str
    actor: _Actor
    org_id: str | None
    action: str
    target: _Target
    request_id: str | None
    source_address: str | None
    outcome: str
    decision_ref: str | None
    payload_hash: _Hex64
    prev_hash: _Hex64
    entry_hash: _Hex64

    def cells(self) -> tuple[object, ...]:
        return (
            self.seq, self.chain, self.at, self.actor.kind, self.actor.id, self.org_id,
            self.action, self.target.type, self.target.id, self.request_id,
            self.source_address, self.outcome, self.decision_ref, self.payload_hash,
            self.prev_hash, self.entry_hash,
        )  # fmt: skip


_ROWS = msgspec.json.Decoder(_Row)
_HASH_MEMBER = b',"entry_hash":"'


class _Bad(Exception):
    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entry_cells(e: AuditEntry) -> tuple[object, ...]:
    return tuple(getattr(e, c) for c in CSV_COLUMNS)


def _csv_text(rows: Iterable[tuple[object, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    danger = _FORMULA_START
    # Spreadsheets run cells that start like a formula: such text gets a leading quote.
    # None is written as an empty cell. entries.jsonl stays the authoritative copy.
    writer.writerows(
        [v if v.__class__ is not str or v[:1] not in danger else "'" + v for v in row]
        for row in rows
    )
    return out.getvalue()


def write_bundle(
    directory: Path | str,
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    proofs: Iterable[InclusionProof],
    public_keys: Iterable[PublicKeyRecord],
    *,
    org_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Path:
    """Write the bundle for ``org_id``'s entries (already filtered to its chains and window)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(entries, key=lambda e: (e.chain, e.seq))
    chains: dict[str, dict[str, Any]] = {}
    for e in ordered:
        if e.org_id != org_id:
            raise ValueError(f"{e.chain} seq {e.seq} belongs to {e.org_id}, not {org_id}")
        info = chains.setdefault(e.chain, {"first_seq": e.seq, "prev_hash": e.prev_hash})
        info["last_seq"], info["head_hash"] = e.seq, e.entry_hash
    with (out / ENTRIES).open("wb") as fh:
        fh.writelines(e.to_json_bytes() + b"\n" for e in ordered)
    (out / CSV_FILE).write_text(_csv_text(map(_entry_cells, ordered)), encoding="utf-8")
    cps = sorted(checkpoints, key=lambda c: (c.region, c.number))
    (out / CHECKPOINTS).write_bytes(canonical_json([c.to_dict() for c in cps]) + b"\n")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "org_id": org_id,
        "since": None if since is None else format_time(since),
        "until": None if until is None else format_time(until),
        "chains": chains,
        "files": {name: _sha_file(out / name) for name in (ENTRIES, CSV_FILE, CHECKPOINTS)},
        "checkpoints": [
            {"region": c.region, "number": c.number, "checkpoint_hash": c.checkpoint_hash}
            for c in cps
        ],
        "public_keys": [k.to_dict() for k in public_keys],
        "proofs": [p.to_dict() for p in sorted(proofs, key=lambda p: (p.chain, p.number))],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def verify_bundle(
    directory: Path | str, *, trusted_keys: Sequence[PublicKeyRecord] | None = None
) -> VerifyResult:
    """Check a bundle offline. ``trusted_keys`` (e.g. from GET /api/v1/audit/keys) replace
    the keys the bundle carries, which otherwise prove integrity but not authorship."""
    root = Path(directory)
    try:
        return _verify(root, trusted_keys)
    except _Bad as bad:
        return VerifyResult(False, str(bad), bad.seq)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise _Bad(f"{path.name}: unreadable ({exc})") from exc


def _verify(root: Path, trusted_keys: Sequence[PublicKeyRecord] | None) -> VerifyResult:
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
    except (KeyError, TypeError, ValueError) as exc:
        raise _Bad(f"manifest.json: malformed ({exc})") from exc
    lines, rows = _rows(root / ENTRIES)
    by_chain = _group(rows, starts, str(manifest["org_id"]), manifest["since"] is None)
    _check_checkpoints(checkpoints, keys, proofs)
    _check_listed(manifest, checkpoints)
    heads = _check_proofs(checkpoints, proofs, by_chain)
    positions: dict[str, list[int]] = {chain: [] for chain in by_chain}
    for i, row in enumerate(rows):
        positions[row.chain].append(i)
    for chain, chain_rows in by_chain.items():
        first_seq, prev_hash = int(starts[chain]["first_seq"]), str(starts[chain]["prev_hash"])
        chain_lines = [lines[i] for i in positions[chain]]
        committed = heads.get(chain, [])
        if not _fast_chain_ok(chain_rows, chain_lines, first_seq, prev_hash, committed):
            _explain_chain(chain, chain_lines, first_seq, prev_hash, committed)
    _check_files(root, manifest, rows)
    return VerifyResult(True, _summary(by_chain, heads), None, len(rows))


def _fast_chain_ok(
    rows: Sequence[_Row],
    lines: Sequence[bytes],
    first_seq: int,
    prev_hash: str,
    heads: Sequence[tuple[int, str]],
) -> bool:
    """The hot loop: hash each line's bytes minus its entry_hash member, check the links.

    Equivalent to re-encoding because lines must be canonical; anything unexpected falls
    back to _explain_chain, which re-encodes and names the problem.
    """
    expected, link = first_seq, prev_hash
    sha, domain, member = hashlib.sha256, ENTRY_DOMAIN, _HASH_MEMBER
    for row, line in zip(rows, lines, strict=True):
        digest = row.entry_hash
        i = line.find(member)
        if (
            row.seq != expected
            or row.prev_hash != link
            or i < 0
            or sha(domain + line[:i] + line[i + 80 :]).hexdigest() != digest
        ):
            return False
        expected, link = expected + 1, digest
    for seq, digest in heads:
        if (
            seq >= expected
            or (rows[seq - first_seq].entry_hash if seq >= first_seq else prev_hash) != digest
        ):
            return False
    return True


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


def _rows(path: Path) -> tuple[list[bytes], list[_Row]]:
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise _Bad(f"{path.name}: unreadable ({exc})") from exc
    lines = blob.splitlines()
    try:
        rows = _ROWS.decode_lines(blob)
    except msgspec.DecodeError:
        rows = []
    if len(rows) == len(lines) and _ALL_HEX.fullmatch("".join(r.payload_hash for r in rows)):
        return lines, rows
    for number, line in enumerate(lines, 1):
        try:
            AuditEntry.from_dict(json.loads(line))
        except (ValueError, TypeError) as exc:
            seq = _seq_of(line)
            where = f"seq {seq}" if seq is not None else f"line {number}"
            raise _Bad(f"{path.name} {where}: malformed entry ({exc})", seq) from exc
    raise _Bad(f"{path.name}: malformed")  # pragma: no cover - some line must have failed


def _seq_of(line: bytes) -> int | None:
    try:
        seq = json.loads(line).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def _group(
    entries: Sequence[_Row], starts: Mapping[str, Any], org_id: str, from_genesis: bool
) -> dict[str, list[_Row]]:
    by_chain: dict[str, list[_Row]] = {chain: [] for chain in starts}
    for e in entries:
        if e.org_id != org_id or e.chain not in by_chain:
            raise _Bad(f"{e.chain} seq {e.seq}: entry is not part of {org_id}'s slice", e.seq)
        by_chain[e.chain].append(e)
    for chain, start in starts.items():
        if not chain.startswith(f"{org_id}/"):
            raise _Bad(f"manifest.json: chain {chain} is not {org_id}'s")
        if not re.fullmatch(r"[0-9a-f]{64}", str(start["prev_hash"])):
            raise _Bad(f"manifest.json: {chain} prev_hash is not 64 hex digits")
        if from_genesis and (start["first_seq"] != 1 or start["prev_hash"] != GENESIS_HASH):
            raise _Bad(f"{chain}: an export without --since must start at seq 1", 1)
    return by_chain


def _check_checkpoints(
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


def _check_proofs(
    checkpoints: Sequence[Checkpoint],
    proofs: Sequence[InclusionProof],
    by_chain: Mapping[str, Sequence[_Entry]],
) -> dict[str, list[tuple[int, str]]]:
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


def _check_files(root: Path, manifest: Mapping[str, Any], entries: Sequence[_Row]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ENTRIES, CSV_FILE, CHECKPOINTS}:
        raise _Bad("manifest.json: file list is incomplete")
    for name, digest in sorted(files.items()):
        if _sha_file(root / name) != digest:
            seq = _first_csv_difference(root, entries) if name == CSV_FILE else None
            where = f" (first differing row: seq {seq})" if seq is not None else ""
            raise _Bad(f"{name}: SHA-256 does not match manifest.json{where}", seq)
    # The manifest is not signed: a CSV rewritten together with its hash must still match.
    rendered = _expected_csv(entries)
    if hashlib.sha256(rendered).hexdigest() != files[CSV_FILE]:
        seq = _first_csv_difference(root, entries)
        raise _Bad(
            f"entries.csv does not match entries.jsonl (first differing row: seq {seq})", seq
        )


_CSV_HEADER = (",".join(CSV_COLUMNS) + "\n").encode()
_FORMULA_CELL_STARTS = tuple((sep + c).encode() for sep in ",\n" for c in "=+-@\t")


def _expected_csv(rows: Sequence[_Row]) -> bytes:
    """What _csv_text renders for ``rows`` (UTF-8), without the csv module when no cell
    needs quoting or a formula guard (the usual case): then a row is its cells joined by
    commas.

    The plain rendering is used only if it provably has 16 cells per line and nothing to
    quote or guard: no quote or CR anywhere, exactly one newline per row, exactly 15
    commas per row and no cell starting like a formula. Otherwise the csv module renders.
    """
    body = "".join(
        [
            f"{r.seq},{r.chain},{r.at},{r.actor.kind},{r.actor.id or ''},{r.org_id or ''},"
            f"{r.action},{r.target.type or ''},{r.target.id or ''},{r.request_id or ''},"
            f"{r.source_address or ''},{r.outcome},{r.decision_ref or ''},{r.payload_hash},"
            f"{r.prev_hash},{r.entry_hash}\n"
            for r in rows
        ]
    ).encode("utf-8")
    n = len(rows)
    if (
        body.count(b"\n") == n
        and body.count(b",") == 15 * n
        and b'"' not in body
        and b"\r" not in body
        and body[:1] not in _FORMULA_BYTES
        # A one-byte search is far faster than a two-byte one: look for "," or newline
        # before a formula character only when that character occurs at all.
        and not any(s[1:] in body and s in body for s in _FORMULA_CELL_STARTS)
    ):
        return _CSV_HEADER + body
    return _csv_text(r.cells() for r in rows).encode("utf-8")


def _first_csv_difference(root: Path, entries: Sequence[_Row]) -> int | None:
    expected = _csv_text(e.cells() for e in entries).splitlines()
    found = (root / CSV_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    for i, (want, got) in enumerate(zip(expected, found, strict=False)):
        if want != got:
            return entries[i - 1].seq if i > 0 else None
    if len(found) != len(expected):
        shorter = min(len(found), len(expected))
        return entries[shorter - 1].seq if 0 < shorter <= len(entries) else None
    return None


def _summary(
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
