"""Auditor export bundles: write one organization's slice, verify it offline.

A bundle is a directory: entries.jsonl (canonical entries, one per line), entries.csv
(the same for people), checkpoints.json (signed checkpoints) and manifest.json (file
hashes, chain starts, checkpoint references, public keys, inclusion proofs). verify_bundle
needs nothing but the directory (and optionally public keys obtained independently).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from control_plane.audit.bundle_format import CSV_COLUMNS, csv_text
from control_plane.audit.bundle_parallel import verify_parallel, workers_for
from control_plane.audit.bundle_verify import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    CHECKPOINTS,
    CSV_FILE,
    ENTRIES,
    MANIFEST,
    VerifyResult,
    sha_file,
    verify_serial,
)
from control_plane.audit.canonical import canonical_json, format_time
from control_plane.audit.chain import AuditEntry
from control_plane.audit.merkle import Checkpoint, InclusionProof
from control_plane.audit.signing import PublicKeyRecord

__all__ = ["BUNDLE_FORMAT", "CSV_COLUMNS", "VerifyResult", "verify_bundle", "write_bundle"]


def _entry_cells(e: AuditEntry) -> tuple[object, ...]:
    return tuple(getattr(e, c) for c in CSV_COLUMNS)


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
    (out / CSV_FILE).write_text(csv_text(map(_entry_cells, ordered)), encoding="utf-8")
    cps = sorted(checkpoints, key=lambda c: (c.region, c.number))
    (out / CHECKPOINTS).write_bytes(canonical_json([c.to_dict() for c in cps]) + b"\n")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "org_id": org_id,
        "since": None if since is None else format_time(since),
        "until": None if until is None else format_time(until),
        "chains": chains,
        "files": {name: sha_file(out / name) for name in (ENTRIES, CSV_FILE, CHECKPOINTS)},
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
    directory: Path | str,
    *,
    trusted_keys: Sequence[PublicKeyRecord] | None = None,
    workers: int | None = None,
) -> VerifyResult:
    """Check a bundle offline. ``trusted_keys`` (e.g. from GET /api/v1/audit/keys) replace
    the keys the bundle carries, which otherwise prove integrity but not authorship.

    ``workers``: processes to check entries with; by default one per available CPU for a
    large bundle, this process alone for a small one (starting processes would cost more
    than they save). One worker checks the parts the same way, in this process. A bundle
    this check cannot prove intact is checked again by verify_serial, which names the
    first bad sequence number.
    """
    root = Path(directory)
    count = workers if workers is not None else workers_for(root / ENTRIES)
    result = verify_parallel(root, trusted_keys, workers=count)
    if result is not None:
        return result
    return verify_serial(root, trusted_keys)
