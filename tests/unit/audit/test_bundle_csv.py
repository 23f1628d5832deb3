"""entries.csv checks: the verifier renders the expected CSV without the csv module when
nothing needs quoting, and must then judge exactly as the csv module's rendering would."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from control_plane.audit import AuditEntry, append, payload_hash, verify_bundle, write_bundle
from control_plane.audit.bundle_format import CSV_HEADER as _CSV_HEADER
from control_plane.audit.bundle_format import Actor as _Actor
from control_plane.audit.bundle_format import Row as _Row
from control_plane.audit.bundle_format import Target as _Target
from control_plane.audit.bundle_format import csv_body as _csv_body
from control_plane.audit.bundle_format import csv_text as _csv_text
from control_plane.audit.bundle_format import expected_csv as _expected_csv

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CHAIN = "org_a/ca-qc-1"

# Cells that force quoting or a formula guard, mixed with ordinary ones.
awkward = st.sampled_from(["", "a,b", 'say "x"', "two\nlines", "cr\rhere", "=1+1", "+1", "-1",
                           "@cmd", "\ttab", "x-y", "é€", "plain"])  # fmt: skip
cell = st.none() | awkward | st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


@st.composite
def rows(draw: st.DrawFn) -> list[_Row]:
    count = draw(st.integers(0, 4))
    return [
        _Row(
            seq=i + 1,
            chain=draw(st.sampled_from([CHAIN, "org_a/-x", "=org/r"])),
            at=draw(st.sampled_from(["2026-03-01T00:00:00.000000Z", "-2026"])),
            actor=_Actor(kind=draw(st.sampled_from(["user", "@user"])), id=draw(cell)),
            org_id=draw(cell),
            action=draw(st.sampled_from(["projects.create", "a,b"])),
            target=_Target(type=draw(cell), id=draw(cell)),
            request_id=draw(cell),
            source_address=draw(cell),
            outcome=draw(st.sampled_from(["success", "+ok"])),
            decision_ref=draw(cell),
            payload_hash="a" * 64,
            prev_hash="b" * 64,
            entry_hash="c" * 64,
        )
        for i in range(count)
    ]


@given(rows())
def test_expected_csv_is_the_csv_module_rendering(drawn: list[_Row]) -> None:
    assert _expected_csv(drawn) == _csv_text(r.cells() for r in drawn).encode("utf-8")


def _chain(targets: list[str]) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i, target in enumerate(targets):
        entries.append(
            append(
                entries[-1] if entries else None,
                chain=CHAIN,
                at=T0 + timedelta(seconds=i),
                actor_kind="user",
                actor_id="usr_1",
                org_id="org_a",
                action="projects.create",
                target_type="project",
                target_id=target,
                request_id=f"req_{i}",
                source_address="203.0.113.7",
                outcome="success",
                decision_ref=None,
                payload_hash=payload_hash({"i": i}),
            )
        )
    return entries


def test_a_bundle_with_cells_to_quote_and_guard_verifies(tmp_path: Path) -> None:
    entries = _chain(["prj_1", "a,b", 'say "x"', "two\nlines", "=HYPERLINK(1)", "-1"])
    write_bundle(tmp_path, entries, [], [], [], org_id="org_a")

    result = verify_bundle(tmp_path)

    assert result.ok, result.message
    assert "'=HYPERLINK(1)" in (tmp_path / "entries.csv").read_text()


def test_a_csv_rewritten_with_its_manifest_hash_is_caught_at_its_row(tmp_path: Path) -> None:
    write_bundle(tmp_path, _chain([f"prj_{i}" for i in range(5)]), [], [], [], org_id="org_a")
    csv_path = tmp_path / "entries.csv"
    csv_path.write_text(csv_path.read_text().replace("req_3", "req_X"), encoding="utf-8")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"]["entries.csv"] = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    result = verify_bundle(tmp_path)

    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "entries.csv does not match entries.jsonl (first differing row: seq 4)" in result.message


# Text a JSON encoder writes without a backslash: no quote, backslash or C0 control.
unescaped_cell = st.none() | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters='"\\' + bytes(range(32)).decode()),
    max_size=8,
)


@given(st.lists(st.tuples(unescaped_cell, unescaped_cell, unescaped_cell), max_size=4))
def test_csv_body_of_unescaped_json_is_the_csv_module_rendering(
    cells: list[tuple[str | None, str | None, str | None]],
) -> None:
    drawn = [
        _Row(
            seq=i + 1, chain=CHAIN, at="2026-03-01T00:00:00.000000Z",
            actor=_Actor(kind="user", id=a), org_id="org_a", action="projects.create",
            target=_Target(type=b, id=c), request_id=None, source_address=None,
            outcome="success", decision_ref=None, payload_hash="a" * 64, prev_hash="b" * 64,
            entry_hash="c" * 64,
        )
        for i, (a, b, c) in enumerate(cells)
    ]  # fmt: skip
    assert b"\\" not in msgspec.json.encode(drawn)  # what the flag promises
    rendered = _csv_text(r.cells() for r in drawn).encode("utf-8")
    assert _CSV_HEADER + _csv_body(drawn, unescaped=True) == rendered
