"""Crypto-shredding: deleting an organization destroys its data keys in the same
transaction, so its secrets can never be decrypted again, while others' still are."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from control_plane.sovereignty.keys.datakeys import KeyDestroyed
from control_plane.sovereignty.keys.models import DataKey, SecretKind
from tests.fixtures.factories import Tenant, make_org, signed_in

Client = AsyncTestClient[Litestar]
SYSTEM = service.Actor.system("tests")


async def store(db: AsyncSession, org_id: str, clock: Clock, settings: Settings) -> str:
    stored = await service.put(
        db,
        org_id=org_id,
        name="kubeconfig",
        kind=SecretKind.KUBECONFIG,
        value=b"apiVersion: v1\nkind: Config\n",
        actor=SYSTEM,
        clock=clock,
        settings=settings,
    )
    return stored.id


async def reveal(
    db: AsyncSession, org_id: str, secret_id: str, clock: Clock, settings: Settings
) -> bytes:
    return await service.reveal(
        db,
        org_id=org_id,
        secret_id=secret_id,
        justification="shredding test",
        actor=SYSTEM,
        clock=clock,
        settings=settings,
    )


async def delete_org(client: Client, org: Tenant) -> None:
    owner = await signed_in(client, org.accounts[TenantRole.OWNER])
    response = await client.delete(
        f"/api/v1/orgs/{org.org_id}", params={"confirm": org.slug}, headers=owner
    )
    assert response.status_code == 204, response.text


class TestCryptoShredding:
    async def test_after_deletion_the_secrets_cannot_be_decrypted(
        self, client: Client, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        doomed, kept = await make_org(db), await make_org(db)
        doomed_secret = await store(db, doomed.org_id, clock, settings)
        await service.rotate_data_key(db, org_id=doomed.org_id, clock=clock, settings=settings)
        kept_secret = await store(db, kept.org_id, clock, settings)
        await db.commit()

        await delete_org(client, doomed)

        with pytest.raises(KeyDestroyed) as refused:
            await reveal(db, doomed.org_id, doomed_secret, clock, settings)
        await db.rollback()
        assert refused.value.status == 410
        assert refused.value.to_dict()["type"] == "/problems/key-destroyed"
        assert "destroyed" in refused.value.detail
        assert await reveal(db, kept.org_id, kept_secret, clock, settings) == (
            b"apiVersion: v1\nkind: Config\n"
        )

    async def test_the_raw_database_keeps_no_usable_key(
        self, client: Client, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        await store(db, org.org_id, clock, settings)
        await service.rotate_data_key(db, org_id=org.org_id, clock=clock, settings=settings)
        await db.commit()
        wrapped_before = (
            (await db.execute(select(DataKey.wrapped_key).where(DataKey.org_id == org.org_id)))
            .scalars()
            .all()
        )
        assert len(wrapped_before) == 2

        await delete_org(client, org)

        rows = (
            await db.execute(
                text("SELECT state, wrapped_key, destroyed_at FROM data_key WHERE org_id = :org"),
                {"org": org.org_id},
            )
        ).all()
        assert [(r.state, r.wrapped_key) for r in rows] == [("destroyed", None)] * 2
        assert all(r.destroyed_at is not None for r in rows)
        for table in ("data_key", "secret", "audit_entry", "organization"):
            for row in (await db.execute(text(f"SELECT * FROM {table}"))).all():  # noqa: S608
                for cell in row:
                    if isinstance(cell, bytes | memoryview):
                        assert all(bytes(w) not in bytes(cell) for w in wrapped_before)

    async def test_nothing_new_can_be_stored_for_a_deleted_organization(
        self, client: Client, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        await store(db, org.org_id, clock, settings)
        await db.commit()

        await delete_org(client, org)

        with pytest.raises(KeyDestroyed):
            await service.put(
                db,
                org_id=org.org_id,
                name="another",
                kind=SecretKind.OTHER,
                value=b"x",
                actor=SYSTEM,
                clock=clock,
                settings=settings,
            )
        await db.rollback()
        with pytest.raises(KeyDestroyed):
            await service.rotate_data_key(db, org_id=org.org_id, clock=clock, settings=settings)

    async def test_the_destruction_is_in_the_ledger(
        self, client: Client, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        await store(db, org.org_id, clock, settings)
        await db.commit()

        await delete_org(client, org)

        entries = (
            await db.execute(
                text(
                    "SELECT actor_kind, target_type, target_id, decision_ref FROM audit_entry "
                    "WHERE action = 'keys.destroy' AND org_id = :org"
                ),
                {"org": org.org_id},
            )
        ).all()
        assert [tuple(e) for e in entries] == [
            ("system", "organization", org.org_id, "organization deleted")
        ]

    async def test_a_refused_deletion_destroys_nothing(
        self, client: Client, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        secret_id = await store(db, org.org_id, clock, settings)
        await db.commit()
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])

        response = await client.delete(
            f"/api/v1/orgs/{org.org_id}", params={"confirm": "wrong"}, headers=owner
        )

        assert response.status_code == 400
        assert await reveal(db, org.org_id, secret_id, clock, settings) == (
            b"apiVersion: v1\nkind: Config\n"
        )
