"""Auditor bundles: one organization's slice verifies offline; every tamper is named."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.audit import (
    AuditEntry,
    Checkpoint,
    Keyring,
    Leaf,
    SigningKey,
    append,
    build_checkpoint,
    canonical_json,
    chain_name,
    payload_hash,
    proofs_for,
    verify_bundle,
    write_bundle,
)
from control_plane.audit.canonical import format_time

T0 = datetime(2026, 3, 1, tzinfo=UTC)
REGIONS = ("ca-qc-1", "se-north-1")
ORGS = ("org_a", "org_b", "org_c")
SLICE = "org_b"
TARGET = "org_b/ca-qc-1"  # the chain most tampers hit
ACTIONS = ("projects.create", "api_keys.create", "api_keys.revoke", "auth.login", "nodes.drain")


@dataclass
class Ledger:
    """An in-memory stand-in for the database: all orgs, both regions, checkpoints."""

    keyring: Keyring
    entries: list[AuditEntry] = field(default_factory=list)
    heads: dict[str, AuditEntry] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    leaves: dict[tuple[str, int], list[Leaf]] = field(default_factory=dict)

    def checkpoint(self, at: datetime) -> None:
        for region in REGIONS:
            prev = next((c for c in reversed(self.checkpoints) if c.region == region), None)
            heads = [
                Leaf(h.chain, h.seq, h.entry_hash)
                for h in self.heads.values()
                if h.chain.endswith("/" + region)
            ]
            key = self.keyring.signing_key(region)
            cp, leaves = build_checkpoint(region=region, at=at, heads=heads, prev=prev, key=key)
            self.checkpoints.append(cp)
            self.leaves[(cp.region, cp.number)] = leaves


def build_ledger(n: int = 240, every: int = 20, seed: int = 3) -> Ledger:
    rng = random.Random(seed)
    ring = Keyring()
    for region in REGIONS:
        ring.add(region, SigningKey.generate(), T0)
    ledger = Ledger(ring)
    for i in range(n):
        org = rng.choice((*ORGS, None))
        chain = chain_name(org, rng.choice(REGIONS))
        at = T0 + timedelta(seconds=i)
        entry = append(
            ledger.heads.get(chain),
            chain=chain,
            at=at,
            actor_kind="system" if org is None else rng.choice(("user", "api_key", "operator")),
            actor_id=f"usr_{rng.randrange(5)}",
            org_id=org,
            action=rng.choice(ACTIONS),
            target_type="project",
            target_id=f"prj_{rng.randrange(100)}",
            request_id=f"req_{i}",
            source_address="198.51.100.9",
            outcome=rng.choice(("success", "denied", "failed")),
            decision_ref=None if rng.random() < 0.7 else f"dec_{i}",
            payload_hash=payload_hash({"i": i}),
        )
        ledger.heads[chain] = entry
        ledger.entries.append(entry)
        if i == n // 2:  # rotate one region's key mid-ledger: both keys must verify
            ring.rotate("ca-qc-1", SigningKey.generate(), at + timedelta(milliseconds=250))
        if (i + 1) % every == 0 or i == n - 1:
            ledger.checkpoint(at + timedelta(milliseconds=500))
    return ledger


def export(ledger: Ledger, out: Path, org: str = SLICE, since: datetime | None = None) -> Path:
    """What `cpctl audit export` will do once wired to the database."""
    floor = "" if since is None else format_time(since)
    entries = [e for e in ledger.entries if e.org_id == org and e.at >= floor]
    chains = {e.chain for e in entries}
    regions = {c.split("/")[1] for c in chains}
    cps = [c for c in ledger.checkpoints if c.region in regions and c.at >= floor]
    proofs = [p for c in cps for p in proofs_for(c, ledger.leaves[(c.region, c.number)], chains)]
    keys = ledger.keyring.public_keys()
    return write_bundle(out, entries, cps, proofs, keys, org_id=org, since=since)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    built = build_ledger()
    assert sum(e.chain == TARGET for e in built.entries) >= 12
    return built


@pytest.fixture
def bundle(ledger: Ledger, tmp_path: Path) -> Path:
    return export(ledger, tmp_path / "bundle")


def read_lines(bundle: Path) -> list[bytes]:
    return (bundle / "entries.jsonl").read_bytes().splitlines()


def write_lines(bundle: Path, lines: list[bytes]) -> None:
    (bundle / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def position(lines: list[bytes], chain: str, seq: int) -> int:
    return next(
        i
        for i, line in enumerate(lines)
        if (row := json.loads(line))["chain"] == chain and row["seq"] == seq
    )


def edit_line(bundle: Path, chain: str, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    lines = read_lines(bundle)
    i = position(lines, chain, seq)
    row = json.loads(lines[i])
    change(row)
    lines[i] = canonical_json(row)
    write_lines(bundle, lines)


def last_seq(bundle: Path, chain: str) -> int:
    return max(
        int(row["seq"])
        for line in read_lines(bundle)
        if (row := json.loads(line))["chain"] == chain
    )


def load_checkpoints(bundle: Path) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((bundle / "checkpoints.json").read_bytes())
    return loaded


def replace_checkpoint(bundle: Path, number: int, forged: Checkpoint, add_key: Any = None) -> None:
    """A careful forger: swap the checkpoint and fix the manifest so only signatures remain."""
    cps = [c if c["number"] != number or c["region"] != forged.region else forged.to_dict()
           for c in load_checkpoints(bundle)]  # fmt: skip
    (bundle / "checkpoints.json").write_bytes(canonical_json(cps) + b"\n")
    manifest = json.loads((bundle / "manifest.json").read_text())
    for ref in manifest["checkpoints"]:
        if (ref["region"], ref["number"]) == (forged.region, number):
            ref["checkpoint_hash"] = forged.checkpoint_hash
    if add_key is not None:
        manifest["public_keys"].append(add_key)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def proof_seq(bundle: Path, region: str, number: int) -> int:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return min(
        int(p["seq"])
        for p in manifest["proofs"]
        if (p["region"], p["checkpoint"]) == (region, number)
    )


class TestIntactBundle:
    def test_slice_of_one_org_verifies(self, bundle: Path) -> None:
        result = verify_bundle(bundle)
        assert result.ok, result.message
        assert result.first_bad_seq is None
        assert "org_b/ca-qc-1: seq 1.." in result.message

    def test_other_orgs_entries_are_absent_yet_it_verifies(self, bundle: Path) -> None:
        for path in bundle.iterdir():
            text = path.read_text()
            assert "org_a" not in text
            assert "org_c" not in text
            assert "_provider" not in text
        assert verify_bundle(bundle).ok

    def test_bundle_carries_every_rotated_key(self, bundle: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_text())
        regions = sorted(k["region"] for k in manifest["public_keys"])
        assert regions == ["ca-qc-1", "ca-qc-1", "se-north-1"]

    def test_export_since_a_time_starts_mid_chain_and_verifies(
        self, ledger: Ledger, tmp_path: Path
    ) -> None:
        since = T0 + timedelta(seconds=100)
        bundle = export(ledger, tmp_path / "since", since=since)
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["chains"][TARGET]["first_seq"] > 1
        result = verify_bundle(bundle)
        assert result.ok, result.message

    def test_trusted_keys_from_the_provider_verify_it(self, ledger: Ledger, bundle: Path) -> None:
        assert verify_bundle(bundle, trusted_keys=ledger.keyring.public_keys()).ok


class TestTamperedEntries:
    def test_modified_field(self, bundle: Path) -> None:
        edit_line(bundle, TARGET, 5, lambda row: row.update(outcome="forged"))
        result = verify_bundle(bundle)
        assert not result.ok
        assert result.first_bad_seq == 5
        assert "seq 5: modified" in result.message

    def test_deleted_entry(self, bundle: Path) -> None:
        lines = read_lines(bundle)
        del lines[position(lines, TARGET, 5)]
        write_lines(bundle, lines)
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, 5)
        assert "seq 5 was deleted" in result.message

    def test_inserted_entry(self, bundle: Path) -> None:
        lines = read_lines(bundle)
        i = position(lines, TARGET, 4)
        prev = AuditEntry.from_dict(json.loads(lines[i]))
        forged = append(
            prev, chain=TARGET, at=T0, actor_kind="operator", actor_id="usr_evil", org_id=SLICE,
            action="nodes.console", target_type="node", target_id="nod_1", request_id=None,
            source_address=None, outcome="success", decision_ref=None,
            payload_hash=payload_hash({}),
        )  # fmt: skip
        lines.insert(i + 1, forged.to_json_bytes())
        write_lines(bundle, lines)
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, 5)
        assert "inserted" in result.message

    def test_reordered_entries(self, bundle: Path) -> None:
        lines = read_lines(bundle)
        i, j = position(lines, TARGET, 5), position(lines, TARGET, 6)
        lines[i], lines[j] = lines[j], lines[i]
        write_lines(bundle, lines)
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, 5)
        assert "reordered" in result.message

    def test_truncated_tail(self, bundle: Path) -> None:
        last = last_seq(bundle, TARGET)
        lines = read_lines(bundle)
        for seq in (last, last - 1, last - 2):
            del lines[position(lines, TARGET, seq)]
        write_lines(bundle, lines)
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, last - 2)
        assert "truncated" in result.message
        assert f"commits to seq {last}" in result.message

    def test_edited_csv_only(self, bundle: Path) -> None:
        csv_path = bundle / "entries.csv"
        rows = csv_path.read_text().splitlines()
        i = next(n for n, r in enumerate(rows) if r.startswith(f"7,{TARGET},"))
        rows[i] = rows[i].replace("198.51.100.9", "192.0.2.1")
        csv_path.write_text("\n".join(rows) + "\n")
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, 7)
        assert "entries.csv" in result.message

    def test_dropped_proof_cannot_hide_a_cut_tail(self, bundle: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_text())
        last_cp = max(c["number"] for c in manifest["checkpoints"] if c["region"] == "ca-qc-1")
        manifest["proofs"] = [
            p for p in manifest["proofs"]
            if not (p["chain"] == TARGET and p["checkpoint"] == last_cp)
        ]  # fmt: skip
        (bundle / "manifest.json").write_text(json.dumps(manifest))
        result = verify_bundle(bundle)
        assert not result.ok
        assert f"no inclusion proof for checkpoint ca-qc-1#{last_cp}" in result.message


class TestTamperedCheckpoints:
    def test_checkpoint_signed_by_another_key(self, ledger: Ledger, bundle: Path) -> None:
        original = next(c for c in ledger.checkpoints if (c.region, c.number) == ("ca-qc-1", 3))
        intruder = SigningKey.generate()
        body = {**original.body(), "key_id": intruder.key_id}
        unsigned = Checkpoint(**body, signature="")
        forged = Checkpoint(**body, signature=intruder.sign(unsigned.signed_bytes()))
        replace_checkpoint(bundle, 3, forged)
        result = verify_bundle(bundle)
        seq = proof_seq(bundle, "ca-qc-1", 3)
        assert (result.ok, result.first_bad_seq) == (False, seq)
        assert "checkpoint ca-qc-1#3" in result.message
        assert "unknown key" in result.message

    def test_signature_from_another_key_under_the_real_key_id(
        self, ledger: Ledger, bundle: Path
    ) -> None:
        original = next(c for c in ledger.checkpoints if (c.region, c.number) == ("ca-qc-1", 2))
        forged = Checkpoint(
            **original.body(), signature=SigningKey.generate().sign(original.signed_bytes())
        )
        replace_checkpoint(bundle, 2, forged)
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, proof_seq(bundle, "ca-qc-1", 2))
        assert "does not verify" in result.message

    def test_forged_last_checkpoint_with_its_key_planted_needs_trusted_keys(
        self, ledger: Ledger, bundle: Path
    ) -> None:
        original = [c for c in ledger.checkpoints if c.region == "ca-qc-1"][-1]
        intruder = SigningKey.generate()
        body = {**original.body(), "key_id": intruder.key_id}
        forged = Checkpoint(**body, signature="")
        forged = Checkpoint(**body, signature=intruder.sign(forged.signed_bytes()))
        planted = {**ledger.keyring.public_keys("ca-qc-1")[0].to_dict(),
                   "key_id": intruder.key_id, "public_key": intruder.public_key_b64}  # fmt: skip
        replace_checkpoint(bundle, original.number, forged, add_key=planted)
        result = verify_bundle(bundle, trusted_keys=ledger.keyring.public_keys())
        assert not result.ok
        assert f"checkpoint ca-qc-1#{original.number}" in result.message
        assert "unknown key" in result.message

    def test_modified_checkpoint_root(self, bundle: Path) -> None:
        cps = load_checkpoints(bundle)
        target = next(c for c in cps if (c["region"], c["number"]) == ("ca-qc-1", 4))
        target["root"] = "ab" * 32
        (bundle / "checkpoints.json").write_bytes(canonical_json(cps) + b"\n")
        result = verify_bundle(bundle)
        assert (result.ok, result.first_bad_seq) == (False, proof_seq(bundle, "ca-qc-1", 4))
        assert "checkpoint ca-qc-1#4" in result.message
        assert "does not verify" in result.message

    def test_removed_middle_checkpoint(self, bundle: Path) -> None:
        cps = [c for c in load_checkpoints(bundle) if (c["region"], c["number"]) != ("ca-qc-1", 4)]
        (bundle / "checkpoints.json").write_bytes(canonical_json(cps) + b"\n")
        result = verify_bundle(bundle)
        assert not result.ok
        assert "ca-qc-1#4 is missing" in result.message


MUTABLE = (
    "at", "actor.kind", "actor.id", "action", "target.type", "target.id", "request_id",
    "source_address", "outcome", "decision_ref", "payload_hash", "prev_hash", "entry_hash",
    "org_id", "seq", "chain",
)  # fmt: skip
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)


class TestAnySingleModification:
    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(data=st.data(), name=st.sampled_from(MUTABLE))
    def test_is_detected_at_its_sequence_number(
        self, ledger: Ledger, tmp_path: Path, data: st.DataObject, name: str
    ) -> None:
        base = tmp_path / "base"
        if not base.exists():
            export(ledger, base)
        with tempfile.TemporaryDirectory() as scratch:
            bundle = Path(shutil.copytree(base, Path(scratch) / "b"))
            lines = read_lines(bundle)
            i = data.draw(st.integers(0, len(lines) - 1), label="line")
            row = json.loads(lines[i])
            holder, key = (
                (row[name.split(".")[0]], name.split(".")[1]) if "." in name else (row, name)
            )
            old = holder[key]
            if name == "seq":
                new: Any = data.draw(st.integers(1, 10**6).filter(lambda v: v != old))
            elif name.endswith("hash"):
                new = data.draw(hex64.filter(lambda v: v != old))
            else:
                new = data.draw(st.text(max_size=12).filter(lambda v: v != old))
            holder[key] = new
            lines[i] = json.dumps(row, sort_keys=True, separators=(",", ":")).encode()
            write_lines(bundle, lines)
            result = verify_bundle(bundle)
        assert not result.ok
        if name not in ("seq", "chain"):
            assert result.first_bad_seq == row["seq"], result.message
