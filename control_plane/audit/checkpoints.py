"""Taking, storing and reading the region's signed checkpoints.

A checkpoint commits to the head of every chain of the region (a Merkle tree over the
heads, signed with the region's Ed25519 key and linked to the previous checkpoint). One is
taken at a fixed cadence (``CP_AUDIT_CHECKPOINT_SECONDS``) when any head moved, and on
demand before an export, so a bundle always ends on a signed commitment.

Several replicas may try at once: on PostgreSQL an advisory transaction lock per region
lets one through at a time; SQLite has a single writer anyway.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime

import structlog
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.audit.keyfiles import load_keyring
from control_plane.audit.merkle import Checkpoint, Leaf, build_checkpoint
from control_plane.audit.models import AuditChainHead, AuditCheckpointRow
from control_plane.clock import Clock
from control_plane.periodic import every
from control_plane.settings import Settings

__all__ = ["checkpoint_loop", "checkpoints_for_chain", "latest_checkpoint", "take_checkpoint"]

log = structlog.get_logger("control_plane.audit")


async def _lock_region(db: AsyncSession, region: str) -> None:
    if db.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"audit-checkpoint:{region}".encode())
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        # Any write statement takes SQLite's write lock for the rest of the transaction.
        await db.execute(
            update(AuditCheckpointRow)
            .where(AuditCheckpointRow.number < 0)
            .values(number=AuditCheckpointRow.number)
        )


def _to_checkpoint(row: AuditCheckpointRow) -> Checkpoint:
    return Checkpoint(
        region=row.region,
        number=row.number,
        at=row.at,
        tree_size=row.tree_size,
        root=row.root,
        prev_checkpoint_hash=row.prev_checkpoint_hash,
        key_id=row.key_id,
        signature=row.signature,
    )


def _leaves(row: AuditCheckpointRow) -> list[Leaf]:
    return [Leaf(chain, seq, digest) for chain, seq, digest in json.loads(row.leaves)]


async def _latest_row(db: AsyncSession, region: str) -> AuditCheckpointRow | None:
    found = await db.execute(
        select(AuditCheckpointRow)
        .where(AuditCheckpointRow.region == region)
        .order_by(AuditCheckpointRow.number.desc())
        .limit(1)
    )
    return found.scalars().first()


async def latest_checkpoint(db: AsyncSession, region: str) -> Checkpoint | None:
    row = await _latest_row(db, region)
    return None if row is None else _to_checkpoint(row)


async def _heads(db: AsyncSession, region: str) -> list[Leaf]:
    rows = await db.execute(
        select(AuditChainHead.chain, AuditChainHead.seq, AuditChainHead.entry_hash).where(
            AuditChainHead.chain.like(f"%/{region}"), AuditChainHead.seq > 0
        )
    )
    return sorted(Leaf(r.chain, r.seq, r.entry_hash) for r in rows)


async def take_checkpoint(
    db: AsyncSession, settings: Settings, now: datetime, *, force: bool = False
) -> Checkpoint | None:
    """Sign the next checkpoint of this deployment's region if any head moved (or ``force``).

    Runs in the caller's transaction, which should be short and commit right after.
    """
    region = settings.region
    await _lock_region(db, region)
    heads = await _heads(db, region)
    previous = await _latest_row(db, region)
    if previous is not None and not force and _leaves(previous) == heads:
        return None
    if previous is None and not heads and not force:
        return None
    keyring = load_keyring(settings.key_dir, region, now)
    checkpoint, leaves = build_checkpoint(
        region=region,
        at=now,
        heads=heads,
        prev=None if previous is None else _to_checkpoint(previous),
        key=keyring.signing_key(region),
    )
    await db.execute(
        insert(AuditCheckpointRow).values(
            **checkpoint.to_dict(),
            leaves=json.dumps([[x.chain, x.seq, x.entry_hash] for x in leaves]),
        )
    )
    return checkpoint


async def checkpoints_for_chain(
    db: AsyncSession, region: str, chain: str, first_seq: int, last_seq: int
) -> list[tuple[Checkpoint, list[Leaf]]]:
    """Checkpoints of ``region`` whose head of ``chain`` lies in [first_seq - 1, last_seq].

    Heads only move forward, so these are consecutive checkpoints: exactly those an
    export of that range of ``chain`` must carry a proof for.
    """
    rows = await db.execute(
        select(AuditCheckpointRow)
        .where(AuditCheckpointRow.region == region)
        .order_by(AuditCheckpointRow.number)
    )
    chosen: list[tuple[Checkpoint, list[Leaf]]] = []
    for row in rows.scalars():
        if f'"{chain}"' not in row.leaves:
            continue
        leaves = _leaves(row)
        head = next((x for x in leaves if x.chain == chain), None)
        if head is not None and first_seq - 1 <= head.seq <= last_seq:
            chosen.append((_to_checkpoint(row), leaves))
    return chosen


async def checkpoint_loop(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
) -> None:
    """Take a checkpoint every ``audit_checkpoint_seconds`` until cancelled."""

    async def tick() -> None:
        async with sessionmaker() as db, db.begin():
            taken = await take_checkpoint(db, settings, clock.now())
        if taken is not None:
            log.info("audit checkpoint", region=taken.region, number=taken.number)

    await every(settings.audit_checkpoint_seconds, tick, name="audit checkpoint")
