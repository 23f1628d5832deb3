"""The multi-process verifier: it accepts exactly the intact bundles, and whatever it
cannot prove intact is named by the single-process check, at the same sequence number."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from control_plane.audit import (
    AuditEntry,
    Checkpoint,
    Keyring,
    Leaf,
    SigningKey,
    append,
    build_checkpoint,
    bundle_parallel,
    payload_hash,
    proofs_for,
    verify_bundle,
    write_bundle,
)
from control_plane.audit.bundle_format import CSV_HEADER
from control_plane.audit.bundle_parallel import PartReport, check_part, split, verify_parallel
from control_plane.audit.bundle_verify import verify_serial
from tests.unit.audit.test_bundle_tamper import (
    SLICE,
    T0,
    TARGET,
    Ledger,
    build_ledger,
    export,
    last_seq,
    position,
    read_lines,
    replace_checkpoint,
    write_lines,
)

PARTS = 4
BIG = "org_big/ca-qc-1"


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return build_ledger()


@pytest.fixture
def multi(ledger: Ledger, tmp_path: Path) -> Path:
    """One organization's slice: a chain in each of two regions."""
    return export(ledger, tmp_path / "multi")


@pytest.fixture
def single(tmp_path: Path) -> Path:
    """One chain of 400 entries, with a signed checkpoint on its head."""
    ring = Keyring()
    ring.add("ca-qc-1", SigningKey.generate(), T0)
    entries: list[AuditEntry] = []
    for i in range(400):
        entries.append(
            append(
                entries[-1] if entries else None,
                chain=BIG,
                at=T0 + timedelta(seconds=i),
                actor_kind="user",
                actor_id="usr_1",
                org_id="org_big",
                action="projects.create",
                target_type="project",
                target_id=f"prj_{i:04d}",
                request_id=f"req_{i:04d}",
                source_address="198.51.100.9",
                outcome="success",
                decision_ref=None,
                payload_hash=payload_hash({"i": i}),
            )
        )
    head = Leaf(BIG, entries[-1].seq, entries[-1].entry_hash)
    cp, leaves = build_checkpoint(
        region="ca-qc-1", at=T0 + timedelta(days=1), heads=[head], prev=None,
        key=ring.signing_key("ca-qc-1"),
    )  # fmt: skip
    proofs = proofs_for(cp, leaves, [BIG])
    return write_bundle(
        tmp_path / "single", entries, [cp], proofs, ring.public_keys(), org_id="org_big"
    )


def parallel(bundle: Path) -> object:
    return verify_parallel(bundle, None, workers=2, parts=PARTS)


def boundary_seqs(bundle: Path) -> list[int]:
    """The seq of the first entry of every part but the first."""
    path = bundle / "entries.jsonl"
    blob = path.read_bytes()
    return [json.loads(blob[at : blob.index(b"\n", at)])["seq"] for at in split(path, PARTS)[1:-1]]


def serial_equal(bundle: Path, result: object) -> bool:
    return result == verify_serial(bundle)


def same_length_edit(bundle: Path, seq: int) -> None:
    """Change one entry's target id without moving any byte offset (so the parts stay)."""
    lines = read_lines(bundle)
    i = position(lines, BIG, seq)
    lines[i] = lines[i].replace(f'"prj_{seq - 1:04d}"'.encode(), b'"prj_XXXX"')
    write_lines(bundle, lines)


class TestIntact:
    def test_multi_chain_bundle_matches_the_single_process_result(self, multi: Path) -> None:
        assert len(split(multi / "entries.jsonl", PARTS)) == PARTS + 1
        result = parallel(multi)
        assert result is not None
        assert result == verify_serial(multi)

    def test_single_chain_split_into_ranges_matches(self, single: Path) -> None:
        assert len(boundary_seqs(single)) == PARTS - 1
        result = parallel(single)
        assert result == verify_serial(single)
        assert result is not None
        assert result.ok
        assert result.entries == 400

    def test_verify_bundle_uses_it_when_asked(self, single: Path) -> None:
        assert verify_bundle(single, workers=2) == verify_serial(single)

    def test_one_worker_checks_the_parts_in_this_process(self, single: Path, multi: Path) -> None:
        for bundle in (single, multi):
            result = verify_parallel(bundle, None, workers=1)
            assert result is not None
            assert result == verify_serial(bundle) == verify_bundle(bundle, workers=1)

    def test_crlf_lines_get_the_single_process_verdict(self, single: Path) -> None:
        path = single / "entries.jsonl"
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        manifest_path = single / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["files"]["entries.jsonl"] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
        assert parallel(single) is None  # the fast check splits at newlines only
        serial = verify_serial(single)  # splits as splitlines() does, as it always has
        assert verify_bundle(single, workers=2) == verify_bundle(single, workers=1) == serial


class TestRangeBoundaries:
    @pytest.mark.parametrize("offset", [0, -1], ids=["first-of-part", "last-of-previous"])
    def test_modified_entry_at_a_boundary_is_named(self, single: Path, offset: int) -> None:
        seq = boundary_seqs(single)[1] + offset
        same_length_edit(single, seq)
        assert boundary_seqs(single)[1] + offset == seq  # the parts did not move
        assert parallel(single) is None
        result = verify_bundle(single, workers=2)
        assert (result.ok, result.first_bad_seq) == (False, seq)
        assert f"seq {seq}: modified" in result.message

    def test_deleted_first_entry_of_a_part_breaks_the_stitch(self, single: Path) -> None:
        seq = boundary_seqs(single)[0]
        lines = read_lines(single)
        del lines[position(lines, BIG, seq)]
        write_lines(single, lines)
        assert parallel(single) is None
        result = verify_bundle(single, workers=2)
        assert (result.ok, result.first_bad_seq) == (False, seq)
        assert f"seq {seq} was deleted" in result.message

    def test_parts_swapped_whole_are_caught(self, single: Path) -> None:
        path = single / "entries.jsonl"
        blob, cuts, first = path.read_bytes(), split(path, PARTS), boundary_seqs(single)[0]
        parts = [blob[a:b] for a, b in pairwise(cuts)]
        path.write_bytes(parts[0] + parts[2] + parts[1] + parts[3])
        assert parallel(single) is None
        result = verify_bundle(single, workers=2)
        assert (result.ok, result.first_bad_seq) == (False, first)
        assert serial_equal(single, result)


class TestChunksWithinAPart:
    """A worker reads its part a chunk at a time: chains are stitched across chunks too."""

    def report(self, bundle: Path, chunk: int) -> PartReport:
        path = bundle / "entries.jsonl"
        manifest = json.loads((bundle / "manifest.json").read_text())
        heads = {p["chain"]: [(p["seq"], p["entry_hash"])] for p in manifest["proofs"]}
        return check_part(
            str(path), 0, path.stat().st_size, manifest["org_id"],
            frozenset(manifest["chains"]), heads, str(bundle / "entries.csv"),
            len(CSV_HEADER), chunk=chunk,
        )  # fmt: skip

    def test_small_chunks_give_the_one_chunk_report(self, single: Path, multi: Path) -> None:
        for bundle in (single, multi):
            whole = self.report(bundle, 2**30)
            assert whole.ok
            assert self.report(bundle, 700) == whole  # a line or two per chunk

    def test_a_link_broken_between_chunks_is_caught(self, single: Path) -> None:
        lines = read_lines(single)
        del lines[position(lines, BIG, 200)]
        write_lines(single, lines)
        assert not self.report(single, 700).ok

    def test_a_modified_entry_in_a_later_chunk_is_caught(self, single: Path) -> None:
        same_length_edit(single, 333)
        assert not self.report(single, 700).ok


class TestCsvRowsOfAPart:
    """A worker looks for its first CSV row near where it should be, then anywhere; the
    parent accepts the parts only if they tile entries.csv exactly."""

    def test_rows_far_from_the_hint_are_found(
        self, single: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(bundle_parallel, "_NEAR", 100)  # less than a row either side
        path, csv_path = single / "entries.jsonl", single / "entries.csv"
        bounds = split(path, PARTS)
        lines_before = path.read_bytes()[: bounds[2]].count(b"\n")
        csv_lines = csv_path.read_bytes().split(b"\n")
        offset = sum(len(line) + 1 for line in csv_lines[: 1 + lines_before])  # header too
        for hint in (0, offset, csv_path.stat().st_size):
            report = check_part(
                str(path), bounds[2], bounds[3], "org_big", frozenset([BIG]), {},
                str(csv_path), hint,
            )  # fmt: skip
            assert (report.ok, report.csv_offset) == (True, offset)

    def test_a_line_between_the_rows_of_two_parts_is_caught(self, single: Path) -> None:
        path, csv_path = single / "entries.jsonl", single / "entries.csv"
        lines_before = path.read_bytes()[: split(path, PARTS)[2]].count(b"\n")
        csv_lines = csv_path.read_bytes().split(b"\n")
        csv_lines.insert(1 + lines_before, b"an extra line")
        csv_path.write_bytes(b"\n".join(csv_lines))
        manifest_path = single / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["files"]["entries.csv"] = hashlib.sha256(csv_path.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest))
        assert parallel(single) is None
        result = verify_bundle(single, workers=2)
        assert not result.ok
        assert "entries.csv does not match entries.jsonl" in result.message
        assert serial_equal(single, result)


def _modify(bundle: Path) -> None:
    lines = read_lines(bundle)
    i = position(lines, TARGET, 5)
    lines[i] = lines[i].replace(b'"outcome":"', b'"outcome":"x')
    write_lines(bundle, lines)


def _delete(bundle: Path) -> None:
    lines = read_lines(bundle)
    del lines[position(lines, TARGET, 5)]
    write_lines(bundle, lines)


def _insert(bundle: Path) -> None:
    lines = read_lines(bundle)
    i = position(lines, TARGET, 4)
    prev = AuditEntry.from_dict(json.loads(lines[i]))
    forged = append(
        prev, chain=TARGET, at=T0, actor_kind="operator", actor_id="usr_evil", org_id=SLICE,
        action="nodes.console", target_type="node", target_id="nod_1", request_id=None,
        source_address=None, outcome="success", decision_ref=None, payload_hash=payload_hash({}),
    )  # fmt: skip
    lines.insert(i + 1, forged.to_json_bytes())
    write_lines(bundle, lines)


def _reorder(bundle: Path) -> None:
    lines = read_lines(bundle)
    i, j = position(lines, TARGET, 5), position(lines, TARGET, 6)
    lines[i], lines[j] = lines[j], lines[i]
    write_lines(bundle, lines)


def _truncate(bundle: Path) -> None:
    last = last_seq(bundle, TARGET)
    lines = read_lines(bundle)
    for seq in (last, last - 1, last - 2):
        del lines[position(lines, TARGET, seq)]
    write_lines(bundle, lines)


def _foreign_key(ledger: Ledger) -> Callable[[Path], None]:
    def tamper(bundle: Path) -> None:
        original = next(c for c in ledger.checkpoints if (c.region, c.number) == ("ca-qc-1", 3))
        intruder = SigningKey.generate()
        body = {**original.body(), "key_id": intruder.key_id}
        unsigned = Checkpoint(**body, signature="")
        replace_checkpoint(
            bundle, 3, Checkpoint(**body, signature=intruder.sign(unsigned.signed_bytes()))
        )

    return tamper


def _csv_cell(bundle: Path) -> None:
    path = bundle / "entries.csv"
    path.write_text(path.read_text().replace("198.51.100.9", "192.0.2.1", 1))


class TestTampered:
    @pytest.mark.parametrize(
        "name", ["modify", "delete", "insert", "reorder", "truncate", "foreign_key", "csv"]
    )
    def test_parallel_refuses_and_the_message_is_the_serial_one(
        self, ledger: Ledger, multi: Path, name: str
    ) -> None:
        tampers: dict[str, Callable[[Path], None]] = {
            "modify": _modify, "delete": _delete, "insert": _insert, "reorder": _reorder,
            "truncate": _truncate, "foreign_key": _foreign_key(ledger), "csv": _csv_cell,
        }  # fmt: skip
        tampers[name](multi)
        assert parallel(multi) is None
        assert verify_parallel(multi, None, workers=1) is None
        serial = verify_serial(multi)
        assert not serial.ok
        assert serial.first_bad_seq is not None or name == "csv"
        assert verify_bundle(multi, workers=2) == serial == verify_bundle(multi, workers=1)
