"""Appending to and reading the stored ledger, inside the caller's transaction.

``record`` (one entry) and ``record_many`` (several, possibly on different chains) lock
the heads of the chains they append to, compute the entries with
``control_plane.audit.chain.append``, insert them and move the heads; they never commit,
so entries are written (or rolled back) together with the change they record. Appenders
of one chain therefore queue on its head row (PostgreSQL row lock, taken by
``INSERT ... ON CONFLICT DO UPDATE``, which also creates a new chain's head; on SQLite the
single writer does the same), which keeps seq contiguous and the chain unforked. Heads are
locked in chain order, so batches over several chains cannot deadlock each other (a
transaction that calls ``record`` for chain B and then chain A can still deadlock with one
doing A then B: pass such entries to one ``record_many``).

On PostgreSQL an append costs two statements whatever the batch size: one locks the heads
(the head row carries the previous entry's seq and hash, which is all the next entry
needs), one inserts the entries and moves the heads, but only if every head's entry is
stored with the hash the head names (else nothing is written and LedgerInconsistent is
raised). That check runs after the lock is held, so it sees the entry the previous holder
committed.

Entries are only ever inserted: nothing here updates or deletes one, and on PostgreSQL a
trigger refuses both (migration 0003).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import RowMapping, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from control_plane.audit.canonical import payload_hash
from control_plane.audit.chain import GENESIS_HASH, AuditEntry, append, chain_name
from control_plane.audit.models import AuditEntryRow
from control_plane.ids import new_id, new_ids

__all__ = ["LedgerInconsistent", "NewEntry", "entries", "record", "record_many", "write_many"]

_ENTRY_COLUMNS = (
    AuditEntryRow.seq,
    AuditEntryRow.chain,
    AuditEntryRow.at,
    AuditEntryRow.actor_kind,
    AuditEntryRow.actor_id,
    AuditEntryRow.org_id,
    AuditEntryRow.action,
    AuditEntryRow.target_type,
    AuditEntryRow.target_id,
    AuditEntryRow.request_id,
    AuditEntryRow.source_address,
    AuditEntryRow.outcome,
    AuditEntryRow.decision_ref,
    AuditEntryRow.payload_hash,
    AuditEntryRow.prev_hash,
    AuditEntryRow.entry_hash,
)
_NAMES = tuple(column.key for column in _ENTRY_COLUMNS)


class LedgerInconsistent(RuntimeError):
    """A chain head names an entry that is not stored as it says (the ledger was altered)."""


@dataclass(frozen=True, slots=True)
class NewEntry:
    """One entry for ``record_many``: the same fields ``record`` takes."""

    org_id: str | None
    region: str
    actor_kind: str
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    request_id: str | None
    source_address: str | None
    outcome: str
    at: datetime
    decision_ref: str | None = None
    payload: Mapping[str, Any] | None = field(default=None, hash=False)


async def record(
    db: AsyncSession,
    *,
    org_id: str | None,
    region: str,
    actor_kind: str,
    actor_id: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    request_id: str | None,
    source_address: str | None,
    outcome: str,
    decision_ref: str | None = None,
    payload: Mapping[str, Any] | None = None,
    at: datetime,
) -> AuditEntry:
    """Append one entry to the ``(org_id, region)`` chain; the caller commits.

    Only the payload's hash is stored; ``payload=None`` hashes as JSON ``null``.
    """
    new = NewEntry(
        org_id=org_id,
        region=region,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=request_id,
        source_address=source_address,
        outcome=outcome,
        decision_ref=decision_ref,
        payload=payload,
        at=at,
    )
    return (await record_many(db, (new,)))[0]


async def record_many(db: AsyncSession, new: Sequence[NewEntry]) -> list[AuditEntry]:
    """Append several entries in the caller's transaction; the caller commits.

    Entries of one chain follow each other in the order given; the result is in the order
    given. Cheaper than one ``record`` per entry: two statements on PostgreSQL for the
    whole batch. All heads are locked until the transaction ends, so keep batches short.
    """
    if not new:
        return []
    return await write_many(await db.connection(), new)


async def write_many(conn: AsyncConnection, new: Sequence[NewEntry]) -> list[AuditEntry]:
    """record_many on a connection inside a transaction; the caller commits. The
    group-commit appender writes this way: an ORM session's bookkeeping measured about a
    tenth of a 32-entry batch's CPU, and it needs none of it."""
    digests = [payload_hash(n.payload) for n in new]  # refuse bad payloads before locking
    names = [chain_name(n.org_id, n.region) for n in new]
    chains = sorted(set(names))
    postgres = conn.dialect.name == "postgresql"
    before = await (_lock_heads_pg if postgres else _lock_heads_sqlite)(conn, chains)
    last = {chain: _stub(chain, *before[chain]) for chain in chains}
    written: list[AuditEntry] = []
    for n, chain, digest in zip(new, names, digests, strict=True):
        entry = append(
            last[chain],
            chain=chain,
            at=n.at,
            actor_kind=n.actor_kind,
            actor_id=n.actor_id,
            org_id=n.org_id,
            action=n.action,
            target_type=n.target_type,
            target_id=n.target_id,
            request_id=n.request_id,
            source_address=n.source_address,
            outcome=n.outcome,
            decision_ref=n.decision_ref,
            payload_hash=digest,
        )
        last[chain] = entry
        written.append(entry)
    after = {chain: (e.seq, e.entry_hash) for chain, e in last.items() if e is not None}
    await (_write_pg if postgres else _write_sqlite)(conn, written, before, after)
    return written


async def entries(
    db: AsyncSession, chain: str, after_seq: int = 0, limit: int = 1000
) -> list[AuditEntry]:
    """Up to ``limit`` entries of ``chain`` with seq above ``after_seq``, in seq order."""
    rows = await db.execute(
        select(*_ENTRY_COLUMNS)
        .where(AuditEntryRow.chain == chain, AuditEntryRow.seq > after_seq)
        .order_by(AuditEntryRow.seq)
        .limit(limit)
    )
    return [_to_entry(row._mapping) for row in rows]


def _stub(chain: str, seq: int, entry_hash: str) -> AuditEntry | None:
    """The previous entry as ``append`` sees it: it reads only seq, chain and entry_hash,
    which the head carries, so the previous entry itself need not be read."""
    if seq == 0:
        return None
    return AuditEntry(
        seq=seq, chain=chain, at="", actor_kind="", actor_id=None, org_id=None, action="",
        target_type=None, target_id=None, request_id=None, source_address=None, outcome="",
        decision_ref=None, payload_hash="", prev_hash="", entry_hash=entry_hash,
    )  # fmt: skip


# --- PostgreSQL: two statements per batch --------------------------------------------------

# Creates missing heads (seq 0, genesis hash) and locks the others, one row at a time in
# chain order: ON CONFLICT DO UPDATE locks the newest version of an existing head (waiting
# for its holder, or for a concurrent creator to commit) and RETURNING gives its seq and
# hash. Concurrent batches thus take shared heads in the same order and cannot deadlock.
_PG_LOCK = text(
    "INSERT INTO audit_chain_head (chain, seq, entry_hash) "
    "SELECT chain, 0, :genesis FROM unnest(CAST(:chains AS VARCHAR[])) AS t(chain) "
    "ORDER BY chain ON CONFLICT (chain) DO UPDATE SET seq = audit_chain_head.seq "
    "RETURNING chain, seq, entry_hash"
)


# The batch travels as two JSON texts (entries, their ids) and one of heads: the driver
# sends each as one string, where 17 arrays cost it a type check per element, and
# msgspec writes the entries in C straight from the dataclasses.
_PG_WRITE = text(
    "WITH heads AS ("
    " SELECT * FROM json_to_recordset(CAST(:heads AS JSON)) AS t(chain VARCHAR,"
    " old_seq BIGINT, old_hash VARCHAR, seq BIGINT, entry_hash VARCHAR)"
    "), intact AS ("
    # Every head's entry must be stored as the head says. This statement starts after the
    # heads are locked, so it sees what their previous holders committed.
    " SELECT 1 AS ok WHERE NOT EXISTS (SELECT 1 FROM heads WHERE heads.old_seq > 0"
    " AND NOT EXISTS (SELECT 1 FROM audit_entry e WHERE e.chain = heads.chain"
    " AND e.seq = heads.old_seq AND e.entry_hash = heads.old_hash))"
    "), inserted AS ("
    " INSERT INTO audit_entry (id, seq, chain, at, actor_kind, actor_id, org_id, action,"
    " target_type, target_id, request_id, source_address, outcome, decision_ref,"
    " payload_hash, prev_hash, entry_hash)"
    " SELECT i.id, e.seq, e.chain, e.at, e.actor_kind, e.actor_id, e.org_id, e.action,"
    " e.target_type, e.target_id, e.request_id, e.source_address, e.outcome,"
    " e.decision_ref, e.payload_hash, e.prev_hash, e.entry_hash"
    " FROM ROWS FROM (json_to_recordset(CAST(:entries AS JSON)) AS (seq BIGINT,"
    " chain VARCHAR, at VARCHAR, actor_kind VARCHAR, actor_id VARCHAR, org_id VARCHAR,"
    " action VARCHAR, target_type VARCHAR, target_id VARCHAR, request_id VARCHAR,"
    " source_address VARCHAR, outcome VARCHAR, decision_ref VARCHAR, payload_hash VARCHAR,"
    " prev_hash VARCHAR, entry_hash VARCHAR)) WITH ORDINALITY AS e(seq, chain, at,"
    " actor_kind, actor_id, org_id, action, target_type, target_id, request_id,"
    " source_address, outcome, decision_ref, payload_hash, prev_hash, entry_hash, n)"
    # Entries and ids are paired by position: the i-th id is the i-th entry's.
    " JOIN json_array_elements_text(CAST(:ids AS JSON)) WITH ORDINALITY AS i(id, n)"
    " USING (n) CROSS JOIN intact"
    ") UPDATE audit_chain_head h SET seq = heads.seq, entry_hash = heads.entry_hash"
    " FROM heads, intact WHERE h.chain = heads.chain AND h.seq = heads.old_seq"
)
_JSON = msgspec.json.Encoder()
# The same for a single entry (the request path): scalars encode faster than arrays.
_PG_WRITE_ONE = text(
    "WITH intact AS ("
    " SELECT 1 AS ok WHERE CAST(:seq AS BIGINT) = 1 OR EXISTS (SELECT 1 FROM audit_entry e"
    " WHERE e.chain = CAST(:chain AS VARCHAR) AND e.seq = CAST(:seq AS BIGINT) - 1"
    " AND e.entry_hash = CAST(:prev_hash AS VARCHAR))"
    "), inserted AS ("
    " INSERT INTO audit_entry (id, seq, chain, at, actor_kind, actor_id, org_id, action,"
    " target_type, target_id, request_id, source_address, outcome, decision_ref,"
    " payload_hash, prev_hash, entry_hash)"
    " SELECT CAST(:id AS VARCHAR), CAST(:seq AS BIGINT), CAST(:chain AS VARCHAR),"
    " CAST(:at AS VARCHAR), CAST(:actor_kind AS VARCHAR), CAST(:actor_id AS VARCHAR),"
    " CAST(:org_id AS VARCHAR), CAST(:action AS VARCHAR), CAST(:target_type AS VARCHAR),"
    " CAST(:target_id AS VARCHAR), CAST(:request_id AS VARCHAR),"
    " CAST(:source_address AS VARCHAR), CAST(:outcome AS VARCHAR),"
    " CAST(:decision_ref AS VARCHAR), CAST(:payload_hash AS VARCHAR),"
    " CAST(:prev_hash AS VARCHAR), CAST(:entry_hash AS VARCHAR) FROM intact"
    ") UPDATE audit_chain_head h SET seq = CAST(:seq AS BIGINT),"
    " entry_hash = CAST(:entry_hash AS VARCHAR) FROM intact"
    " WHERE h.chain = CAST(:chain AS VARCHAR) AND h.seq = CAST(:seq AS BIGINT) - 1"
)


async def _lock_heads_pg(conn: AsyncConnection, chains: list[str]) -> dict[str, tuple[int, str]]:
    """(seq, entry_hash) of each chain's head, row-locked until the transaction ends."""
    rows = await conn.execute(_PG_LOCK, {"chains": chains, "genesis": GENESIS_HASH})
    return {row.chain: (row.seq, row.entry_hash) for row in rows}


async def _write_pg(
    conn: AsyncConnection,
    written: Sequence[AuditEntry],
    before: Mapping[str, tuple[int, str]],
    after: Mapping[str, tuple[int, str]],
) -> None:
    chains = list(after)
    if len(written) == 1:
        one = {name: getattr(written[0], name) for name in _NAMES}
        one["id"] = new_id("aud")
        moved = (await conn.execute(_PG_WRITE_ONE, one)).rowcount
    else:
        heads = [
            {"chain": c, "old_seq": before[c][0], "old_hash": before[c][1],
             "seq": after[c][0], "entry_hash": after[c][1]}
            for c in chains
        ]  # fmt: skip
        params = {
            "entries": _JSON.encode(written).decode(),
            "ids": _JSON.encode(new_ids("aud", len(written))).decode(),
            "heads": _JSON.encode(heads).decode(),
        }
        moved = (await conn.execute(_PG_WRITE, params)).rowcount
    if moved != len(chains):
        problem = await _first_inconsistent(conn, before)
        raise LedgerInconsistent(problem or f"{len(chains) - moved} chain heads moved while locked")


# --- SQLite: one writer at a time, plain statements ----------------------------------------

_SQLITE_NEW_HEAD = text(
    "INSERT INTO audit_chain_head (chain, seq, entry_hash) VALUES (:chain, 0, :genesis) "
    "ON CONFLICT DO NOTHING"
)
_SQLITE_HEADS = text(
    "SELECT chain, seq, entry_hash FROM audit_chain_head WHERE chain IN :chains"
).bindparams(bindparam("chains", expanding=True))
_SQLITE_INSERT = text(
    "INSERT INTO audit_entry (id, seq, chain, at, actor_kind, actor_id, org_id, action,"
    " target_type, target_id, request_id, source_address, outcome, decision_ref,"
    " payload_hash, prev_hash, entry_hash) VALUES (:id, :seq, :chain, :at, :actor_kind,"
    " :actor_id, :org_id, :action, :target_type, :target_id, :request_id, :source_address,"
    " :outcome, :decision_ref, :payload_hash, :prev_hash, :entry_hash)"
)
_SQLITE_MOVE = text(
    "UPDATE audit_chain_head SET seq = :seq, entry_hash = :hash WHERE chain = :chain"
)


async def _lock_heads_sqlite(
    conn: AsyncConnection, chains: list[str]
) -> dict[str, tuple[int, str]]:
    # Write first: this takes SQLite's write lock before the heads are read, so no other
    # writer can move a head between our read and our update.
    await conn.execute(_SQLITE_NEW_HEAD, [{"chain": c, "genesis": GENESIS_HASH} for c in chains])
    rows = await conn.execute(_SQLITE_HEADS, {"chains": chains})
    return {row.chain: (row.seq, row.entry_hash) for row in rows}


async def _write_sqlite(
    conn: AsyncConnection,
    written: Sequence[AuditEntry],
    before: Mapping[str, tuple[int, str]],
    after: Mapping[str, tuple[int, str]],
) -> None:
    problem = await _first_inconsistent(conn, before)
    if problem:
        raise LedgerInconsistent(problem)
    await conn.execute(
        _SQLITE_INSERT,
        [
            {"id": id_, **{n: getattr(e, n) for n in _NAMES}}
            for id_, e in zip(new_ids("aud", len(written)), written, strict=True)
        ],
    )
    await conn.execute(
        _SQLITE_MOVE, [{"chain": c, "seq": s, "hash": h} for c, (s, h) in after.items()]
    )


async def _first_inconsistent(conn: AsyncConnection, heads: Mapping[str, tuple[int, str]]) -> str:
    """The message for the first head whose entry is not stored as it says ('' if none)."""
    for chain, (seq, digest) in sorted(heads.items()):
        if seq == 0:
            continue
        stored = (
            await conn.execute(
                select(AuditEntryRow.entry_hash).where(
                    AuditEntryRow.chain == chain, AuditEntryRow.seq == seq
                )
            )
        ).scalar_one_or_none()
        if stored != digest:
            return f"{chain}: head seq {seq} does not match the stored entry"
    return ""


def _to_entry(columns: RowMapping) -> AuditEntry:
    return AuditEntry(**columns)
