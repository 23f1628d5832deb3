"""Canonical encoding and the per-(org, region) hash chain."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.audit import (
    GENESIS_HASH,
    AuditEntry,
    CanonicalError,
    ProblemKind,
    append,
    canonical_json,
    chain_name,
    payload_hash,
    verify_chain,
)
from control_plane.audit.chain import _BATCH, _bodies, entry_body, entry_hash

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN = "org_a/ca-qc-1"


def make_chain(n: int, chain: str = CHAIN) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = None
    for i in range(n):
        prev = append(
            prev,
            chain=chain,
            at=T0 + timedelta(seconds=i),
            actor_kind="user",
            actor_id="usr_1",
            org_id=chain.split("/")[0],
            action="projects.create",
            target_type="project",
            target_id=f"prj_{i}",
            request_id=f"req_{i}",
            source_address="203.0.113.7",
            outcome="success",
            decision_ref=None,
            payload_hash=payload_hash({"i": i}),
        )
        entries.append(prev)
    return entries


class TestCanonicalJson:
    def test_sorts_keys_without_whitespace_and_keeps_unicode(self) -> None:
        encoded = canonical_json({"b": 1, "a": ["é", None, True]})
        assert encoded == '{"a":["é",null,true],"b":1}'.encode()

    @pytest.mark.parametrize("value", [1.5, {"a": [0.0]}, {1: "x"}, "\ud800", {"a": b"x"}])
    def test_refuses_values_without_one_encoding(self, value: object) -> None:
        with pytest.raises(CanonicalError):
            canonical_json(value)

    def test_payload_hash_ignores_key_order(self) -> None:
        assert payload_hash({"a": 1, "b": 2}) == payload_hash({"b": 2, "a": 1})


text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


class TestEntryEncoding:
    def test_known_answer_vector_is_stable(self) -> None:
        entry = make_chain(1)[0]
        assert entry.prev_hash == GENESIS_HASH
        # Pinned so any change to the format is deliberate (docs/audit-format.md quotes it).
        assert entry.entry_hash == KNOWN_HASH

    @given(
        action=st.from_regex(r"[a-z]{1,8}\.[a-z]{1,8}", fullmatch=True),
        actor_id=st.none() | text,
        target_id=st.none() | text,
        source=st.none() | text,
        decision=st.none() | text,
    )
    def test_fast_encoder_matches_generic_canonical_json(
        self,
        action: str,
        actor_id: str | None,
        target_id: str | None,
        source: str | None,
        decision: str | None,
    ) -> None:
        entry = dataclasses.replace(
            make_chain(1)[0],
            action=action,
            actor_id=actor_id,
            target_id=target_id,
            source_address=source,
            decision_ref=decision,
        )
        as_dict = entry.to_dict()
        assert entry.to_json_bytes() == canonical_json(as_dict)
        del as_dict["entry_hash"]
        assert entry_body(entry) == canonical_json(as_dict)
        assert AuditEntry.from_dict(json.loads(entry.to_json_bytes())) == entry


class TestAppend:
    def test_numbers_from_one_and_links_each_entry_to_the_previous(self) -> None:
        entries = make_chain(3)
        assert [e.seq for e in entries] == [1, 2, 3]
        assert entries[1].prev_hash == entries[0].entry_hash
        assert all(entry_hash(e) == e.entry_hash for e in entries)

    def test_records_time_as_utc_with_microseconds(self) -> None:
        local = datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
        entry = append(None, **{**_fields(make_chain(1)[0]), "at": local})
        assert entry.at == "2026-01-01T00:00:00.000005Z"

    def test_refuses_continuing_another_chain(self) -> None:
        first = make_chain(1)[0]
        with pytest.raises(ValueError, match="chain"):
            append(first, **{**_fields(first), "chain": "org_b/ca-qc-1"})

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("actor_kind", "robot"),
            ("action", "Create"),
            ("payload_hash", "x"),
            ("at", T0.replace(tzinfo=None)),
        ],
    )
    def test_refuses_malformed_fields(self, field: str, value: object) -> None:
        with pytest.raises(ValueError):  # noqa: PT011 - CanonicalError is a ValueError too
            append(None, **{**_fields(make_chain(1)[0]), field: value})

    def test_provider_entries_get_their_own_chain(self) -> None:
        assert chain_name(None, "se-north-1") == "_provider/se-north-1"
        assert chain_name("org_a", "se-north-1") == "org_a/se-north-1"


def _fields(entry: AuditEntry) -> dict[str, Any]:
    fields = dataclasses.asdict(entry)
    for name in ("seq", "prev_hash", "entry_hash"):
        del fields[name]
    fields["at"] = T0
    return fields


class TestVerifyChain:
    def test_intact_chain_verifies(self) -> None:
        assert verify_chain(make_chain(10)) is None

    def test_modified_entry_is_named(self) -> None:
        entries = make_chain(10)
        entries[4] = dataclasses.replace(entries[4], outcome="denied")
        problem = verify_chain(entries)
        assert problem is not None
        assert (problem.seq, problem.kind) == (5, ProblemKind.MODIFIED)
        assert "seq 5" in str(problem)

    def test_deleted_entry_is_named(self) -> None:
        entries = make_chain(10)
        del entries[4]
        problem = verify_chain(entries)
        assert problem is not None
        assert (problem.seq, problem.kind) == (5, ProblemKind.MISSING)

    def test_inserted_entry_is_named(self) -> None:
        entries = make_chain(10)
        forged = append(entries[3], **{**_fields(entries[3]), "action": "keys.revoke"})
        entries.insert(4, forged)
        problem = verify_chain(entries)
        assert problem is not None
        assert (problem.seq, problem.kind) == (5, ProblemKind.INSERTED)

    def test_reordered_entries_are_named(self) -> None:
        entries = make_chain(10)
        entries[4], entries[5] = entries[5], entries[4]
        problem = verify_chain(entries)
        assert problem is not None
        assert (problem.seq, problem.kind) == (5, ProblemKind.REORDERED)

    def test_replaced_link_is_named(self) -> None:
        entries = make_chain(10)
        relinked = dataclasses.replace(entries[3], prev_hash="f" * 64)
        entries[3] = dataclasses.replace(relinked, entry_hash=entry_hash(relinked))
        problem = verify_chain(entries)
        assert problem is not None
        assert (problem.seq, problem.kind) == (4, ProblemKind.BROKEN_LINK)

    def test_tail_cut_below_a_signed_head_is_truncation(self) -> None:
        entries = make_chain(10)
        problem = verify_chain(entries[:7], heads=[(10, entries[9].entry_hash)])
        assert problem is not None
        assert (problem.seq, problem.kind) == (8, ProblemKind.TRUNCATED)

    def test_rewritten_history_contradicts_the_signed_head(self) -> None:
        entries = make_chain(10)
        rewritten = make_chain(10)[:3]
        prev = rewritten[-1]
        for e in entries[3:]:
            prev = append(prev, **{**_fields(e), "outcome": "failed"})
            rewritten.append(prev)
        problem = verify_chain(rewritten, heads=[(10, entries[9].entry_hash)])
        assert problem is not None
        assert problem.kind is ProblemKind.MODIFIED
        assert "rewritten" in problem.detail

    def test_slice_starting_mid_chain_verifies_from_its_prev_hash(self) -> None:
        entries = make_chain(10)
        assert verify_chain(entries[5:], first_seq=6, prev_hash=entries[4].entry_hash) is None
        problem = verify_chain(entries[5:], first_seq=6, prev_hash=GENESIS_HASH)
        assert problem is not None
        assert problem.seq == 6

    def test_entry_of_another_chain_is_foreign(self) -> None:
        entries = make_chain(4)
        entries.append(make_chain(5, "org_b/ca-qc-1")[4])
        problem = verify_chain(entries)
        assert problem is not None
        assert (problem.seq, problem.kind) == (5, ProblemKind.FOREIGN)


class TestVerifyChainFastEncoding:
    """verify_chain encodes in batches with msgspec; it must judge exactly as entry_body."""

    @given(
        actor_id=st.none() | text,
        target_id=st.none() | text,
        source=st.none() | text,
        decision=st.none() | text,
        request=st.none() | text,
    )
    def test_batch_bodies_are_the_canonical_bodies(
        self,
        actor_id: str | None,
        target_id: str | None,
        source: str | None,
        decision: str | None,
        request: str | None,
    ) -> None:
        entry = dataclasses.replace(
            make_chain(1)[0],
            actor_id=actor_id,
            target_id=target_id,
            source_address=source,
            decision_ref=decision,
            request_id=request,
        )
        plain = make_chain(2)[1]

        expected = [entry_body(plain), entry_body(entry), entry_body(plain)]
        assert _bodies([plain, entry, plain]) == expected

    @pytest.mark.parametrize("value", ['say "hi"', "back\\slash", "tab\tnew\nline", "\x00\x1f\x7f"])
    def test_escaped_strings_verify_and_their_tampering_is_named(self, value: str) -> None:
        entries = make_chain(3)
        prev = entries[0]
        entries[1] = append(prev, **{**_fields(entries[1]), "target_id": value})
        entries[2] = append(entries[1], **_fields(entries[2]))

        assert verify_chain(entries) is None
        tampered = [
            *entries[:1],
            dataclasses.replace(entries[1], target_id=value + " "),
            entries[2],
        ]
        problem = verify_chain(tampered)
        assert problem is not None
        assert (problem.seq, problem.kind) == (2, ProblemKind.MODIFIED)

    def test_a_lone_surrogate_is_malformed_not_a_crash(self) -> None:
        entries = make_chain(3)
        entries[1] = dataclasses.replace(entries[1], actor_id="\ud800")

        problem = verify_chain(entries)

        assert problem is not None
        assert (problem.seq, problem.kind) == (2, ProblemKind.MALFORMED)

    def test_tampering_is_named_across_batch_boundaries(self) -> None:
        entries = make_chain(_BATCH + 5)
        assert verify_chain(entries) is None
        for i in (_BATCH - 1, _BATCH, _BATCH + 4):
            tampered = list(entries)
            tampered[i] = dataclasses.replace(entries[i], outcome="denied")
            problem = verify_chain(tampered)
            assert problem is not None
            assert (problem.seq, problem.kind) == (i + 1, ProblemKind.MODIFIED)


KNOWN_HASH = "9f6f5b9d249c1bd75ca3128b9fdf12288f7385aad01ef83b07a4b2b9d8904bb2"
