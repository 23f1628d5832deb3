"""What a bundle's entry files hold, as the verifiers read them: rows decoded in C from
entries.jsonl, the hash check over each line's bytes, and the entries.csv rendering.

Shared by the single-process verifier (control_plane.audit.bundle) and the one that splits
a bundle across processes (control_plane.audit.bundle_parallel).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Annotated

import msgspec

from control_plane.audit.chain import ENTRY_DOMAIN

__all__ = [
    "CSV_COLUMNS",
    "CSV_HEADER",
    "Actor",
    "Row",
    "Target",
    "csv_body",
    "csv_text",
    "decode_rows",
    "expected_csv",
    "line_hashes",
    "links_ok",
]

CSV_COLUMNS = (
    "seq", "chain", "at", "actor_kind", "actor_id", "org_id", "action", "target_type",
    "target_id", "request_id", "source_address", "outcome", "decision_ref", "payload_hash",
    "prev_hash", "entry_hash",
)  # fmt: skip
CSV_HEADER = (",".join(CSV_COLUMNS) + "\n").encode()
_FORMULA_START = frozenset("=+-@\t\r")
_FORMULA_BYTES = frozenset(c.encode() for c in _FORMULA_START)
# A cell after the first that starts like a formula follows a comma. "-" occurs in every
# timestamp, so ",-" is searched for (a regex finds it faster than bytes.find: 0.12
# against 0.29 us per row); the other characters are rare, so ",=" and so on are searched
# for only when the character occurs at all (one memchr each).
_DASH_CELL = re.compile(b",-")
_RARE_CELL_STARTS = tuple((c, b"," + c) for c in (b"=", b"+", b"@", b"\t"))

# gc=False: rows hold only strings, ints and each other, so they cannot form cycles, and
# untracked they decode about three times faster (no garbage collections while a million
# rows pile up).
# Length only: a regex per field halves decoding speed. entry_hash and prev_hash are
# proven hex by the hash comparisons, payload_hash by one pass over all rows
# (decode_rows).
# Fields are declared in the lines' canonical (sorted) key order: msgspec matches keys
# that arrive in field order fastest (1.10 against 1.27 us per line).
_Hex64 = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
_HEX_DIGITS = b"0123456789abcdef"


class Actor(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: str | None
    kind: str


class Target(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: str | None
    type: str | None


class Row(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """entries.jsonl line, decoded and type-checked in C; hashing uses the raw line bytes."""

    action: str
    actor: Actor
    at: str
    chain: str
    decision_ref: str | None
    entry_hash: _Hex64
    org_id: str | None
    outcome: str
    payload_hash: _Hex64
    prev_hash: _Hex64
    request_id: str | None
    seq: Annotated[int, msgspec.Meta(ge=1)]
    source_address: str | None
    target: Target

    def cells(self) -> tuple[object, ...]:
        return (
            self.seq, self.chain, self.at, self.actor.kind, self.actor.id, self.org_id,
            self.action, self.target.type, self.target.id, self.request_id,
            self.source_address, self.outcome, self.decision_ref, self.payload_hash,
            self.prev_hash, self.entry_hash,
        )  # fmt: skip


_ROWS = msgspec.json.Decoder(Row)
_HASH_MEMBER = b',"entry_hash":"'
_MEMBER_LENGTH = len(_HASH_MEMBER) + 64 + 1  # ,"entry_hash":"<64 hex digits>"
_SEQ, _PREV_HASH, _ENTRY_HASH = attrgetter("seq"), attrgetter("prev_hash"), attrgetter("entry_hash")
_PAYLOAD_HASH = attrgetter("payload_hash")
_DOMAIN_HASHED = hashlib.sha256(ENTRY_DOMAIN)


def decode_rows(blob: bytes, *, any_line_end: bool = False) -> tuple[list[bytes], list[Row]] | None:
    """(lines, rows) of JSON Lines bytes, or None if any line is not a well-typed entry.

    Lines end at a newline (as msgspec reads them; a CR is left on its line, which then
    fails its hash, and the caller falls back to verify_serial): split(b"\\n") is a third
    faster than splitlines(). ``any_line_end``: split as splitlines() does (LF, CRLF or
    CR), as verify_serial always has.
    """
    if any_line_end:
        lines = blob.splitlines()
    else:
        lines = blob.split(b"\n")
        if not lines[-1]:
            lines.pop()  # what follows the last newline
    try:
        rows = _ROWS.decode_lines(blob)
    except msgspec.DecodeError:
        return None
    if len(rows) != len(lines) or not _all_hex("".join(map(_PAYLOAD_HASH, rows))):
        return None
    return lines, rows


def _all_hex(text: str) -> bool:
    """Every character is a lower-case hex digit (one pass in C, faster than a regex)."""
    return not text.encode("ascii", "replace").translate(None, _HEX_DIGITS)


def line_hashes(lines: Sequence[bytes]) -> list[str] | None:
    """The entry_hash each line must carry: SHA-256 of the domain and the line's bytes
    without its entry_hash member; None if a line has no such member.

    Hashing the bytes is equivalent to re-encoding the entry because lines must be
    canonical; a caller whose check fails re-encodes the entries to name the problem.
    Each hash starts as a copy of one that has taken the domain: with OpenSSL 3 that is
    cheaper than a new hash object, and no bytes are concatenated (0.93 against 1.07 us).
    """
    start, member, skip = _DOMAIN_HASHED.copy, _HASH_MEMBER, _MEMBER_LENGTH
    digests = []
    for line in lines:
        i = line.find(member)
        if i < 0:
            return None
        h = start()
        h.update(line[:i])
        h.update(line[i + skip :])
        digests.append(h.hexdigest())
    return digests


def links_ok(rows: Sequence[Row], digests: Sequence[str], first_seq: int, prev_hash: str) -> bool:
    """``rows`` (one chain's, in order) are numbered on from ``first_seq``, each carries
    its line's hash (``digests``, from line_hashes) and links to the one before it, the
    first to ``prev_hash``. Compared as whole lists, in C: no Python loop per row."""
    hashes = list(map(_ENTRY_HASH, rows))
    return (
        hashes == digests
        and list(map(_SEQ, rows)) == list(range(first_seq, first_seq + len(rows)))
        and list(map(_PREV_HASH, rows)) == [prev_hash, *hashes][: len(rows)]
    )


def csv_text(rows: Iterable[tuple[object, ...]]) -> str:
    """entries.csv for ``rows`` of cells, header included, rendered by the csv module."""
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


def expected_csv(rows: Sequence[Row]) -> bytes:
    """What csv_text renders for ``rows`` (UTF-8)."""
    return CSV_HEADER + csv_body(rows)


def csv_body(rows: Sequence[Row], *, unescaped: bool = False) -> bytes:
    """expected_csv without its header, without the csv module when no cell needs quoting
    or a formula guard (the usual case): then a row is its cells joined by commas.

    The plain rendering is used only if it provably has 16 cells per line and nothing to
    quote or guard: no quote or CR anywhere, exactly one newline per row, exactly 15
    commas per row and no cell starting like a formula. Otherwise the csv module renders.
    With one newline per row, every newline ends a row and the next row starts with its
    seq (digits), so only cells after a comma and the very first one can start a formula.

    ``unescaped``: the caller knows the JSON the rows were decoded from holds no
    backslash. JSON spells quotes and control characters inside strings only escaped, so
    then no cell holds a quote, a CR or a newline and those searches are skipped.
    """
    # Two f-strings joined by +: CPython builds one of more than 30 parts with a list and
    # str.join, which made a row 20% slower (0.58 against 0.48 us).
    body = "".join(
        [
            f"{r.seq},{r.chain},{r.at},{r.actor.kind},{r.actor.id or ''},{r.org_id or ''},"
            f"{r.action},{r.target.type or ''},"
            + f"{r.target.id or ''},{r.request_id or ''},{r.source_address or ''},"
            f"{r.outcome},{r.decision_ref or ''},{r.payload_hash},{r.prev_hash},{r.entry_hash}\n"
            for r in rows
        ]
    ).encode("utf-8")
    n = len(rows)
    if (
        (unescaped or (body.count(b"\n") == n and b'"' not in body and b"\r" not in body))
        and body.count(b",") == 15 * n
        and body[:1] not in _FORMULA_BYTES
        and not _DASH_CELL.search(body)
        and not any(c in body and start in body for c, start in _RARE_CELL_STARTS)
    ):
        return body
    return csv_text(r.cells() for r in rows).encode("utf-8")[len(CSV_HEADER) :]
