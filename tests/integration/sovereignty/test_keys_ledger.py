"""Every use of a tenant's key is justified and ledgered: ``keys.use`` entries in the
audit_entry table, written in the caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import InvalidInput, NotFound
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from control_plane.sovereignty.keys.models import SecretKind
from tests.fixtures.factories import make_org

OPERATOR = service.Actor("operator", "usr_ops")


async def uses(db: AsyncSession) -> list[tuple[object, ...]]:
    rows = await db.execute(
        text(
            "SELECT org_id, actor_kind, actor_id, target_type, target_id, outcome, decision_ref, "
            "chain FROM audit_entry WHERE action = 'keys.use' ORDER BY seq"
        )
    )
    return [tuple(r) for r in rows]


async def stored(db: AsyncSession, org_id: str | None, clock: Clock, settings: Settings) -> str:
    secret = await service.put(
        db,
        org_id=org_id,
        name="repo-token",
        kind=SecretKind.MODEL_REPOSITORY_CREDENTIALS,
        value=b"token",
        actor=service.Actor.system("tests"),
        clock=clock,
        settings=settings,
    )
    await db.commit()
    return secret.id


class TestKeyUseLedger:
    async def test_a_reveal_records_who_used_which_secret_and_why(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        secret_id = await stored(db, org.org_id, clock, settings)

        await service.reveal(
            db,
            org_id=org.org_id,
            secret_id=secret_id,
            justification="pull model weights for endpoint ep_123",
            actor=OPERATOR,
            clock=clock,
            settings=settings,
        )
        await db.commit()

        assert await uses(db) == [
            (
                org.org_id,
                "operator",
                "usr_ops",
                "secret",
                secret_id,
                "success",
                "pull model weights for endpoint ep_123",
                f"{org.org_id}/{settings.region}",
            )
        ]

    async def test_provider_secrets_are_ledgered_in_the_provider_chain(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        secret_id = await stored(db, None, clock, settings)

        await service.reveal_by_name(
            db,
            org_id=None,
            name="repo-token",
            justification="nightly Stripe sync",
            actor=service.Actor.system("billing.stripe"),
            clock=clock,
            settings=settings,
        )
        await db.commit()

        [entry] = await uses(db)
        assert entry[0] is None
        assert entry[4] == secret_id
        assert entry[7] == f"_provider/{settings.region}"

    @pytest.mark.parametrize("justification", ["", "  ", "x", "y" * 201])
    async def test_no_justification_no_value(
        self, db: AsyncSession, clock: Clock, settings: Settings, justification: str
    ) -> None:
        org = await make_org(db)
        secret_id = await stored(db, org.org_id, clock, settings)

        with pytest.raises(InvalidInput):
            await service.reveal(
                db,
                org_id=org.org_id,
                secret_id=secret_id,
                justification=justification,
                actor=OPERATOR,
                clock=clock,
                settings=settings,
            )
        await db.rollback()
        assert await uses(db) == []

    async def test_a_rolled_back_use_leaves_no_entry_and_another_tenant_cannot_be_named(
        self, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org, other = await make_org(db), await make_org(db)
        secret_id = await stored(db, org.org_id, clock, settings)

        await service.reveal(
            db,
            org_id=org.org_id,
            secret_id=secret_id,
            justification="will be rolled back",
            actor=OPERATOR,
            clock=clock,
            settings=settings,
        )
        await db.rollback()
        with pytest.raises(NotFound):
            await service.reveal(
                db,
                org_id=other.org_id,
                secret_id=secret_id,
                justification="wrong tenant",
                actor=OPERATOR,
                clock=clock,
                settings=settings,
            )
        await db.rollback()

        assert await uses(db) == []
