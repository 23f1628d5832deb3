"""Node agent credentials: issued by an operator per node, shown once, stored as a digest,
revocable; checked from a short cache on every batch (a revocation bites within seconds)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.errors import Conflict, NotFound
from control_plane.identity.secrets import digests_match, token_digest
from control_plane.ids import new_id
from control_plane.inventory import service as inventory
from control_plane.telemetry.models import NodeCredential
from control_plane.telemetry.schemas import CredentialCreated, CredentialRead

__all__ = ["NodeAuthenticator", "issue", "list_for_node", "revoke"]

PREFIX = "cpn"
_MAX_LIVE = 5  # per node: enough to rotate without a gap


def _read(c: NodeCredential) -> CredentialRead:
    return CredentialRead(id=c.id, node_id=c.node_id, prefix=c.prefix, created_by=c.created_by,
                          created_at=c.created_at, revoked_at=c.revoked_at,
                          last_used_at=c.last_used_at)  # fmt: skip


async def issue(db: AsyncSession, clock: Clock, node_id: str, actor: str) -> CredentialCreated:
    await inventory.get_node(db, node_id)  # 404 for an unknown node
    live = await db.execute(
        select(NodeCredential.id).where(
            NodeCredential.node_id == node_id, NodeCredential.revoked_at.is_(None)
        )
    )
    if len(live.all()) >= _MAX_LIVE:
        raise Conflict(detail=f"Node {node_id} has {_MAX_LIVE} live agent credentials; "
                              "revoke one first.")  # fmt: skip
    prefix = f"{PREFIX}_{secrets.token_hex(6)}"
    credential = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = NodeCredential(id=new_id("ncr"), node_id=node_id, prefix=prefix,
                         secret_hash=token_digest(credential), created_by=actor,
                         created_at=clock.now(), revoked_at=None, last_used_at=None)  # fmt: skip
    db.add(row)
    await db.flush()
    return CredentialCreated(id=row.id, node_id=node_id, prefix=prefix, credential=credential,
                             created_at=row.created_at)  # fmt: skip


async def list_for_node(db: AsyncSession, node_id: str) -> list[CredentialRead]:
    await inventory.get_node(db, node_id)
    rows = await db.execute(
        select(NodeCredential).where(NodeCredential.node_id == node_id).order_by(NodeCredential.id)
    )
    return [_read(c) for c in rows.scalars()]


async def revoke(
    db: AsyncSession, clock: Clock, node_id: str, credential_id: str
) -> CredentialRead:
    row = await db.get(NodeCredential, credential_id, with_for_update=True)
    if row is None or row.node_id != node_id:
        raise NotFound(detail=f"No agent credential {credential_id} on node {node_id}.")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
    return _read(row)


async def touch(db: AsyncSession, credential_id: str, now: datetime) -> None:
    """Record use at most once a minute (one small update, not one per batch)."""
    await db.execute(
        update(NodeCredential)
        .where(
            NodeCredential.id == credential_id,
            (NodeCredential.last_used_at.is_(None))
            | (NodeCredential.last_used_at < now - timedelta(minutes=1)),
        )
        .values(last_used_at=now)
    )


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: str
    credential_id: str


@dataclass(slots=True)
class _Cached:
    identity: NodeIdentity | None
    digest: str | None
    loaded_at: datetime


class NodeAuthenticator:
    """Checks ``Authorization: Bearer cpn_...`` against stored digests, cached for
    ``ttl_seconds`` per prefix (so a revocation takes effect within that time)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock,
                 ttl_seconds: float = 5.0) -> None:  # fmt: skip
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._cache: dict[str, _Cached] = {}

    async def verify(self, header: str | None) -> NodeIdentity | None:
        if not header or not header.startswith("Bearer "):
            return None
        credential = header[len("Bearer ") :].strip()
        parts = credential.split("_")
        if len(credential) > 200 or len(parts) < 3 or parts[0] != PREFIX or len(parts[1]) != 12:
            return None
        prefix = f"{parts[0]}_{parts[1]}"
        now = self._clock.now()
        entry = self._cache.get(prefix)
        if entry is None or now - entry.loaded_at > self._ttl:
            entry = await self._load(prefix, now)
        if entry.identity is None or entry.digest is None:
            return None
        return entry.identity if digests_match(entry.digest, token_digest(credential)) else None

    def forget(self) -> None:
        self._cache.clear()

    async def _load(self, prefix: str, now: datetime) -> _Cached:
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(NodeCredential).where(
                        NodeCredential.prefix == prefix, NodeCredential.revoked_at.is_(None)
                    )
                )
            ).scalar_one_or_none()
        entry = (
            _Cached(NodeIdentity(row.node_id, row.id), row.secret_hash, now)
            if row is not None
            else _Cached(None, None, now)
        )
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[prefix] = entry
        return entry
