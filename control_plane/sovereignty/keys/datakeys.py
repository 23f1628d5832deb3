"""Data keys: one keyring per organization (or the provider) and region, versioned.

Key material exists in plaintext only in memory, for the duration of one call; the table
holds it wrapped by the region's KEK, with the KEK id and version that wrapped it. The
wrap is bound (as associated data) to the keyring, region and version, so a wrapped key
copied onto another row does not unwrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, ProblemError
from control_plane.ids import new_id
from control_plane.sovereignty.keys.envelope import new_data_key
from control_plane.sovereignty.keys.kek import KekUnavailable, KeyEncryptionKeys, WrappedKey
from control_plane.sovereignty.keys.models import PROVIDER_KEYRING, DataKey, DataKeyState


class KeyDestroyed(ProblemError):
    """The data key was destroyed (its organization was deleted): the data is unreadable."""

    status = 410
    slug = "key-destroyed"
    title = "Key destroyed"


class KeyUnavailable(ProblemError):
    """A key needed to decrypt is missing here (KEK file, KMS, or data-key version)."""

    status = 503
    slug = "key-unavailable"
    title = "Key unavailable"


@dataclass(frozen=True)
class Keyring:
    """Whose data key: an organization's, or the provider's (``org_id`` None), in a region."""

    org_id: str | None
    region: str

    @property
    def name(self) -> str:
        return self.org_id or PROVIDER_KEYRING


def _wrap_aad(keyring: str, region: str, version: int) -> bytes:
    return msgspec.json.encode(["cp-data-key-v1", keyring, region, version])


async def active_key(
    db: AsyncSession, keks: KeyEncryptionKeys, ring: Keyring, clock: Clock
) -> tuple[int, bytes]:
    """(version, key) of the keyring's active data key, made on first use."""
    row = await _active_row(db, ring)
    if row is None:
        row = await _first_key(db, keks, ring, clock)
    return row.version, await _unwrap(keks, row)


async def key_version(
    db: AsyncSession, keks: KeyEncryptionKeys, ring: Keyring, version: int
) -> bytes:
    """The plaintext of one data-key version, for decrypting what it wrote."""
    row = (
        await db.execute(
            select(DataKey).where(
                DataKey.keyring == ring.name,
                DataKey.region == ring.region,
                DataKey.version == version,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise KeyUnavailable(detail=f"Data key version {version} of this keyring does not exist.")
    return await _unwrap(keks, row)


async def rotate(db: AsyncSession, keks: KeyEncryptionKeys, ring: Keyring, clock: Clock) -> DataKey:
    """Retire the active version and make a new one: new writes use it, old ones still read."""
    now = clock.now()
    await _refuse_if_destroyed(db, ring)
    latest = await _latest_version(db, ring)
    await db.execute(
        update(DataKey)
        .where(
            DataKey.keyring == ring.name,
            DataKey.region == ring.region,
            DataKey.state == DataKeyState.ACTIVE,
        )
        .values(state=DataKeyState.RETIRED, retired_at=now)
    )
    row = await _new_row(keks, ring, latest + 1, now)
    db.add(row)
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent rotation took this version number
        raise Conflict(detail="The data key is being rotated by another request; retry.") from exc
    return row


async def destroy(db: AsyncSession, org_id: str, clock: Clock) -> list[int]:
    """Crypto-shred: drop the wrapped material of every version of ``org_id``'s data keys.

    Returns the versions destroyed. Ciphertexts they wrote can never be decrypted again.
    """
    rows = (
        (
            await db.execute(
                select(DataKey)
                .where(DataKey.org_id == org_id, DataKey.wrapped_key.is_not(None))
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    now = clock.now()
    for row in rows:
        row.wrapped_key = None
        row.state = DataKeyState.DESTROYED
        row.destroyed_at = now
    await db.flush()
    return sorted(row.version for row in rows)


async def rewrap_batch(
    db: AsyncSession,
    keks: KeyEncryptionKeys,
    region: str,
    below_version: int,
    limit: int,
    clock: Clock,
) -> int:
    """Re-wrap up to ``limit`` data keys of ``region`` still under a KEK older than
    ``below_version`` with the current KEK; returns how many were re-wrapped.

    Rows are locked (and ones other rotations hold skipped) only for this batch's
    transaction; readers keep unwrapping with the KEK version recorded on each row.
    """
    query = (
        select(DataKey)
        .where(
            DataKey.region == region,
            DataKey.kek_version < below_version,
            DataKey.wrapped_key.is_not(None),
        )
        .order_by(DataKey.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (await db.execute(query)).scalars().all()
    now = clock.now()
    for row in rows:
        plaintext = await _unwrap(keks, row)
        wrapped = await keks.wrap(region, plaintext, _wrap_aad(row.keyring, region, row.version))
        row.wrapped_key, row.kek_id, row.kek_version = (
            wrapped.blob,
            wrapped.kek_id,
            wrapped.kek_version,
        )
        row.rewrapped_at = now
    await db.flush()
    return len(rows)


async def count_under_older_kek(db: AsyncSession, region: str, below_version: int) -> int:
    """Live data keys of ``region`` still wrapped by a KEK version below ``below_version``."""
    return int(
        (
            await db.execute(
                select(func.count())
                .select_from(DataKey)
                .where(
                    DataKey.region == region,
                    DataKey.kek_version < below_version,
                    DataKey.wrapped_key.is_not(None),
                )
            )
        ).scalar_one()
    )


async def versions(db: AsyncSession, ring: Keyring) -> Sequence[DataKey]:
    """Every version of a keyring, newest first (platform callers; tenants use the scope)."""
    query = select(DataKey).where(DataKey.keyring == ring.name, DataKey.region == ring.region)
    return (await db.execute(query.order_by(DataKey.version.desc()))).scalars().all()


async def _active_row(db: AsyncSession, ring: Keyring) -> DataKey | None:
    query = (
        select(DataKey)
        .where(
            DataKey.keyring == ring.name,
            DataKey.region == ring.region,
            DataKey.state == DataKeyState.ACTIVE,
        )
        .order_by(DataKey.version.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def _latest_version(db: AsyncSession, ring: Keyring) -> int:
    query = select(func.max(DataKey.version)).where(
        DataKey.keyring == ring.name, DataKey.region == ring.region
    )
    return int((await db.execute(query)).scalar_one() or 0)


async def _first_key(
    db: AsyncSession, keks: KeyEncryptionKeys, ring: Keyring, clock: Clock
) -> DataKey:
    """Version 1, or the row a concurrent first writer just made.

    ``INSERT ... ON CONFLICT DO NOTHING`` rather than a savepoint: SQLite's driver would
    commit a savepoint opened before the transaction's first write.
    """
    await _refuse_if_destroyed(db, ring)
    row = await _new_row(keks, ring, await _latest_version(db, ring) + 1, clock.now())
    values = {c.key: getattr(row, c.key) for c in DataKey.__table__.columns}
    dialect_insert = sqlite_insert if db.get_bind().dialect.name == "sqlite" else pg_insert
    await db.execute(
        dialect_insert(DataKey)
        .values(values)
        .on_conflict_do_nothing(index_elements=["keyring", "region", "version"])
    )
    found = await _active_row(db, ring)
    if found is None:
        raise Conflict(detail="The data key is being created by another request; retry.")
    return found


async def _refuse_if_destroyed(db: AsyncSession, ring: Keyring) -> None:
    query = select(func.count()).where(
        DataKey.keyring == ring.name,
        DataKey.region == ring.region,
        DataKey.state == DataKeyState.DESTROYED,
    )
    if int((await db.execute(query)).scalar_one()):
        raise KeyDestroyed(detail="This organization's keys were destroyed when it was deleted.")


async def _new_row(keks: KeyEncryptionKeys, ring: Keyring, version: int, now: datetime) -> DataKey:
    material = new_data_key()
    wrapped = await _wrap(keks, ring, version, material)
    row = DataKey(
        id=new_id("dek"),
        keyring=ring.name,
        org_id=ring.org_id,
        region=ring.region,
        version=version,
        state=DataKeyState.ACTIVE,
        kek_id=wrapped.kek_id,
        kek_version=wrapped.kek_version,
        wrapped_key=wrapped.blob,
        created_at=now,
        rewrapped_at=None,
        retired_at=None,
        destroyed_at=None,
    )
    return row


async def _wrap(
    keks: KeyEncryptionKeys, ring: Keyring, version: int, material: bytes
) -> WrappedKey:
    try:
        return await keks.wrap(ring.region, material, _wrap_aad(ring.name, ring.region, version))
    except KekUnavailable as exc:
        raise KeyUnavailable(
            detail=f"The key-encryption key of {ring.region} is unavailable."
        ) from exc


async def _unwrap(keks: KeyEncryptionKeys, row: DataKey) -> bytes:
    if row.wrapped_key is None or row.state == DataKeyState.DESTROYED:
        raise KeyDestroyed(
            detail="This data key was destroyed (crypto-shredded); what it encrypted is gone."
        )
    try:
        return await keks.unwrap(
            row.region,
            row.kek_version,
            row.wrapped_key,
            _wrap_aad(row.keyring, row.region, row.version),
        )
    except KekUnavailable as exc:
        raise KeyUnavailable(
            detail=f"Key-encryption key {row.region} v{row.kek_version} is unavailable here."
        ) from exc
