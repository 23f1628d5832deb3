"""KEK rotation: a new key-encryption key version, then every data key re-wrapped under it.

Re-wrapping runs in batches, each in a short transaction of its own, so no lock is held
for long and reads never stop: a reader unwraps each data key with the KEK version
recorded on its row, and old KEK versions stay on disk (or in the KMS) until an operator
retires them. Running it again, or from two places at once, is safe: a batch only takes
rows still under an older version, skipping rows another rotation holds.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.audit.store import record
from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.settings import Settings
from control_plane.sovereignty.keys import datakeys
from control_plane.sovereignty.keys.kek import KeyEncryptionKeys
from control_plane.sovereignty.keys.schemas import KekRotationRead
from control_plane.sovereignty.keys.service import keys_for, served_region

DEFAULT_BATCH = 200


async def rotate_kek(
    sessionmaker: async_sessionmaker[AsyncSession],
    keks: KeyEncryptionKeys,
    region: str,
    clock: Clock,
    *,
    actor_kind: str,
    actor_id: str | None,
    batch_size: int = DEFAULT_BATCH,
) -> KekRotationRead:
    """Rotate ``region``'s KEK and re-wrap its data keys; commits batch by batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    version = await keks.rotate(region)
    rewrapped = 0
    while True:
        async with sessionmaker() as db, db.begin():
            done = await datakeys.rewrap_batch(db, keks, region, version, batch_size, clock)
        rewrapped += done
        if done < batch_size:
            break
    async with sessionmaker() as db, db.begin():
        remaining = await datakeys.count_under_older_kek(db, region, version)
        await record(
            db,
            org_id=None,
            region=region,
            actor_kind=actor_kind,
            actor_id=actor_id,
            action="keys.rotate_kek",
            target_type="kek",
            target_id=f"{keks.kek_id(region)}/v{version}",
            request_id=None,
            source_address=None,
            outcome="success",
            decision_ref=None,
            payload={"kek_version": version, "rewrapped": rewrapped, "remaining": remaining},
            at=clock.now(),
        )
    return KekRotationRead(
        region=region,
        kek_id=keks.kek_id(region),
        kek_version=version,
        rewrapped=rewrapped,
        remaining=remaining,
    )


async def rotate_kek_here(
    settings: Settings, *, region: str | None = None, batch_size: int = DEFAULT_BATCH
) -> KekRotationRead:
    """Rotate this deployment's KEK against ``CP_DATABASE_URL`` and ``CP_KEY_DIR`` directly
    (``cpctl keys rotate-kek --local``: a host or job of the region, no API session)."""
    engine = make_engine(settings.database_url)
    try:
        return await rotate_kek(
            make_sessionmaker(engine),
            keys_for(settings),
            served_region(settings, region, field="--region"),
            Clock(),
            actor_kind="system",
            actor_id="cpctl",
            batch_size=batch_size,
        )
    finally:
        await engine.dispose()
