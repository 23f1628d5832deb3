"""Appending to and reading the stored ledger, inside the caller's transaction.

``record`` locks the chain's head row, computes the next entry with
``control_plane.audit.chain.append``, inserts it and moves the head; it never commits, so
the entry is written (or rolled back) together with the change it records. Appenders of
one chain therefore queue on the head row (PostgreSQL ``SELECT ... FOR UPDATE``; on
SQLite the single writer does the same), which keeps seq contiguous and the chain unforked.

Entries are only ever inserted: nothing here updates or deletes one, and on PostgreSQL a
trigger refuses both (migration 0003).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.canonical import payload_hash
from control_plane.audit.chain import GENESIS_HASH, AuditEntry, append, chain_name
from control_plane.audit.models import AuditChainHead, AuditEntryRow

__all__ = ["LedgerInconsistent", "entries", "record"]

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


class LedgerInconsistent(RuntimeError):
    """A chain head names an entry that is not stored as it says (the ledger was altered)."""


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
    chain = chain_name(org_id, region)
    head_seq, head_hash = await _lock_head(db, chain)
    prev = None if head_seq == 0 else await _entry_at(db, chain, head_seq, head_hash)
    entry = append(
        prev,
        chain=chain,
        at=at,
        actor_kind=actor_kind,
        actor_id=actor_id,
        org_id=org_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=request_id,
        source_address=source_address,
        outcome=outcome,
        decision_ref=decision_ref,
        payload_hash=payload_hash(payload),
    )
    await db.execute(insert(AuditEntryRow).values(**_columns(entry)))
    await db.execute(
        update(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .values(seq=entry.seq, entry_hash=entry.entry_hash)
    )
    return entry


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


async def _lock_head(db: AsyncSession, chain: str) -> tuple[int, str]:
    """(seq, entry_hash) of the chain's head, row-locked until the caller's transaction ends.

    A new chain gets a head at seq 0 with the genesis hash; two transactions creating it at
    once both succeed (ON CONFLICT DO NOTHING), then queue on the lock.
    """
    locked = (
        select(AuditChainHead.seq, AuditChainHead.entry_hash)
        .where(AuditChainHead.chain == chain)
        .with_for_update()
    )
    new_head = {"chain": chain, "seq": 0, "entry_hash": GENESIS_HASH}
    if db.get_bind().dialect.name == "sqlite":
        # Write first: this takes SQLite's write lock before the head is read, so no other
        # writer can move the head between our read and our update.
        await db.execute(sqlite_insert(AuditChainHead).values(new_head).on_conflict_do_nothing())
        head = (await db.execute(locked)).one()
        return head.seq, head.entry_hash
    found = (await db.execute(locked)).one_or_none()
    if found is None:
        await db.execute(pg_insert(AuditChainHead).values(new_head).on_conflict_do_nothing())
        found = (await db.execute(locked)).one()
    return found.seq, found.entry_hash


async def _entry_at(db: AsyncSession, chain: str, seq: int, expected_hash: str) -> AuditEntry:
    row = (
        await db.execute(
            select(*_ENTRY_COLUMNS).where(AuditEntryRow.chain == chain, AuditEntryRow.seq == seq)
        )
    ).one_or_none()
    if row is None or row.entry_hash != expected_hash:
        raise LedgerInconsistent(f"{chain}: head seq {seq} does not match the stored entry")
    return _to_entry(row._mapping)


def _to_entry(columns: RowMapping) -> AuditEntry:
    return AuditEntry(**columns)


def _columns(entry: AuditEntry) -> dict[str, Any]:
    return {column.key: getattr(entry, column.key) for column in _ENTRY_COLUMNS}
