"""Rotation: a new data-key version for new writes with old ones still readable, and a KEK
rotation that re-wraps every data key in batches while reads keep succeeding."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.errors import Conflict
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from control_plane.sovereignty.keys.models import DataKey, SecretKind
from control_plane.sovereignty.keys.rotation import rotate_kek
from tests.fixtures.factories import make_org

SYSTEM = service.Actor.system("tests")


async def store(
    db: AsyncSession, org_id: str | None, name: str, value: bytes, clock: Clock, settings: Settings
) -> str:
    stored = await service.put(
        db,
        org_id=org_id,
        name=name,
        kind=SecretKind.OTHER,
        value=value,
        actor=SYSTEM,
        clock=clock,
        settings=settings,
    )
    return stored.id


async def reveal(
    db: AsyncSession, org_id: str | None, secret_id: str, clock: Clock, settings: Settings
) -> bytes:
    return await service.reveal(
        db,
        org_id=org_id,
        secret_id=secret_id,
        justification="rotation test",
        actor=SYSTEM,
        clock=clock,
        settings=settings,
    )


class TestDataKeyRotation:
    async def test_new_writes_use_the_new_version_and_old_secrets_still_read(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        old = await store(db, org.org_id, "old", b"written under v1", clock, settings)

        rotated = await service.rotate_data_key(
            db, org_id=org.org_id, clock=clock, settings=settings
        )
        new = await store(db, org.org_id, "new", b"written under v2", clock, settings)
        await db.commit()

        assert rotated.version == 2
        assert (await service.get(db, org_id=org.org_id, secret_id=old)).data_key_version == 1
        assert (await service.get(db, org_id=org.org_id, secret_id=new)).data_key_version == 2
        assert await reveal(db, org.org_id, old, clock, settings) == b"written under v1"
        assert await reveal(db, org.org_id, new, clock, settings) == b"written under v2"

    async def test_replacing_a_value_moves_it_to_the_active_version(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        secret_id = await store(db, org.org_id, "s", b"one", clock, settings)
        await service.rotate_data_key(db, org_id=org.org_id, clock=clock, settings=settings)

        replaced = await service.replace(
            db, org_id=org.org_id, secret_id=secret_id, value=b"two", clock=clock, settings=settings
        )

        assert replaced.data_key_version == 2
        assert await reveal(db, org.org_id, secret_id, clock, settings) == b"two"

    async def test_each_organization_has_its_own_keys(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        first, second = await make_org(db), await make_org(db)
        await store(db, first.org_id, "s", b"x", clock, settings)
        await store(db, second.org_id, "s", b"y", clock, settings)
        await store(db, None, "s", b"z", clock, settings)

        rows = (await db.execute(select(DataKey.keyring, DataKey.wrapped_key))).all()

        assert sorted(r.keyring for r in rows) == sorted([first.org_id, second.org_id, "provider"])
        assert len({r.wrapped_key for r in rows}) == 3


class TestKekRotation:
    async def test_every_data_key_is_rewrapped_under_the_new_kek_and_still_reads(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        stored = []
        for n in range(7):
            org = await make_org(db)
            value = secrets.token_bytes(20)
            stored.append(
                (org.org_id, await store(db, org.org_id, f"s{n}", value, clock, settings), value)
            )
        await db.commit()
        before = dict((await db.execute(select(DataKey.id, DataKey.wrapped_key))).all())

        engine = make_engine(settings.database_url)
        try:
            result = await rotate_kek(
                make_sessionmaker(engine),
                service.keys_for(settings),
                settings.region,
                clock,
                actor_kind="system",
                actor_id="tests",
                batch_size=3,
            )
        finally:
            await engine.dispose()

        assert (result.kek_version, result.rewrapped, result.remaining) == (2, 7, 0)
        rows = (await db.execute(select(DataKey))).scalars().all()
        assert {r.kek_version for r in rows} == {2}
        assert all(r.wrapped_key != before[r.id] for r in rows)
        assert all(r.rewrapped_at is not None for r in rows)
        for org_id, secret_id, value in stored:
            assert await reveal(db, org_id, secret_id, clock, settings) == value

    async def test_reads_keep_working_while_the_kek_rotates(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        stored = []
        for n in range(24):
            org = await make_org(db)
            value = f"value-{n}-{secrets.token_hex(8)}".encode()
            stored.append(
                (org.org_id, await store(db, org.org_id, "s", value, clock, settings), value)
            )
        await db.commit()
        engine = make_engine(settings.database_url)
        sessionmaker = make_sessionmaker(engine)
        rotation_done = asyncio.Event()
        reads: list[tuple[bool, bool]] = []  # (read while rotating, right value)

        async def reader(offset: int) -> None:
            n = offset
            while not rotation_done.is_set() or n < offset + len(stored):
                org_id, secret_id, value = stored[n % len(stored)]
                rotating = not rotation_done.is_set()
                async with sessionmaker() as session:
                    got = await reveal(session, org_id, secret_id, clock, settings)
                    await session.commit()
                reads.append((rotating and not rotation_done.is_set(), got == value))
                n += 1
                await asyncio.sleep(0)

        async def rotate() -> None:
            try:
                await asyncio.sleep(0.01)  # let the readers start first
                result = await rotate_kek(
                    sessionmaker,
                    service.keys_for(settings),
                    settings.region,
                    clock,
                    actor_kind="system",
                    actor_id="tests",
                    batch_size=4,
                )
                assert result.remaining == 0
            finally:
                rotation_done.set()

        try:
            await asyncio.wait_for(asyncio.gather(rotate(), reader(0), reader(12)), timeout=120)
        finally:
            await engine.dispose()

        assert [ok for _, ok in reads].count(False) == 0
        assert sum(during for during, _ in reads) >= 5, "reads did not overlap the rotation"
        kek_versions = (await db.execute(select(DataKey.kek_version))).scalars().all()
        assert set(kek_versions) == {2}

    async def test_a_region_this_deployment_does_not_serve_is_refused(
        self, settings: Settings
    ) -> None:
        with pytest.raises(Conflict):
            service.served_region(settings, "se-north-1")
