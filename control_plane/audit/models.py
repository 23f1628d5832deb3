"""Durable storage of the audit ledger: entries as hashed, and each chain's head.

``audit_entry`` keeps one column per AuditEntry field; ``at`` is the exact RFC 3339 text
that was hashed, so re-hashing a stored row is exact. ``audit_chain_head`` holds the
latest (seq, entry_hash) of each chain: appenders lock it, which serializes a chain.

On PostgreSQL a trigger refuses UPDATE and DELETE of ``audit_entry`` (migration 0003).
On SQLite there is no such trigger; the application never updates or deletes entries
(control_plane/audit/store.py has no path that does).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base
from control_plane.ids import new_id


def _entry_id() -> str:
    return new_id("aud")


class AuditEntryRow(Base):
    __tablename__ = "audit_entry"
    __table_args__ = (UniqueConstraint("chain", "seq"), Index(None, "org_id", "at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_entry_id)
    chain: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[str] = mapped_column(String(40))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(80))
    org_id: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(100))
    source_address: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))
    decision_ref: Mapped[str | None] = mapped_column(String(200))
    payload_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The newest entry of a chain (seq 0 and the genesis hash before the first one)."""

    __tablename__ = "audit_chain_head"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signed checkpoint over every chain head of one region (see merkle.Checkpoint).

    ``leaves`` keeps the heads it commits to, as compact JSON ``[[chain, seq, hash], ...]``
    in leaf order, so inclusion proofs can be built for any chain later.
    """

    __tablename__ = "audit_checkpoint"

    region: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[str] = mapped_column(String(40))
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    prev_checkpoint_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(80))
    signature: Mapped[str] = mapped_column(String(200))
    leaves: Mapped[str] = mapped_column(Text)
