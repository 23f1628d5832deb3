"""Operators see deliveries the dispatcher gave up on and send them again once the cause is
fixed: the retried message keeps its key (the receiver's idempotency key), so what landed
before is not delivered twice."""

from __future__ import annotations

import random

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.dispatch import Claimed, Dispatcher, PermanentError, WriteBack
from billing.outbox.models import OutboxMessage
from billing.outbox.service import enqueue
from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole
from tests.fixtures.factories import make_org, make_user, signed_in

Sessions = async_sessionmaker[AsyncSession]
OUTBOX = "/api/v1/billing/outbox"


class Receiver:
    """A webhook receiver that refuses (a permanent answer) until it is fixed."""

    def __init__(self) -> None:
        self.fixed = False
        self.received: list[str] = []

    async def __call__(self, message: Claimed) -> WriteBack | None:
        if not self.fixed:
            raise PermanentError("410 Gone: the endpoint was removed")
        self.received.append(message.key)
        return None


async def _dead_webhook(sessions: Sessions, clock: OffsetClock, receiver: Receiver) -> str:
    async with sessions() as db:
        tenant = await make_org(db)
        await enqueue(db, key="budget-80-ops", topic="webhook", org_id=tenant.org_id,
                      payload={"to": "https://hooks.example/secret-path"},
                      now=clock.now())  # fmt: skip
        await db.commit()
    dispatcher = Dispatcher(sessions, clock, {"webhook": receiver}, rng=random.Random(3))
    assert await dispatcher.drain() == {"dead": 1}
    async with sessions() as db:
        return (
            await db.execute(select(OutboxMessage.id).where(OutboxMessage.key == "budget-80-ops"))
        ).scalar_one()


async def _operator(client: AsyncTestClient, db: AsyncSession) -> dict[str, str]:
    account = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN, home_country="CA")
    await db.commit()
    return await signed_in(client, account)


class TestDeadDeliveries:
    async def test_an_operator_sees_why_it_died_and_sends_it_again_once(
        self, client: AsyncTestClient, db: AsyncSession, sessions: Sessions, clock: OffsetClock
    ) -> None:
        receiver = Receiver()
        message_id = await _dead_webhook(sessions, clock, receiver)
        operator = await _operator(client, db)

        dead = await client.get(OUTBOX, headers=operator)
        assert dead.status_code == 200, dead.text
        [listed] = dead.json()
        assert listed["id"] == message_id
        assert listed["state"] == "dead"
        assert "410 Gone" in listed["last_error"]
        assert "secret-path" not in dead.text  # payloads are not shown
        counts = (await client.get(f"{OUTBOX}/counts", headers=operator)).json()
        assert counts == {"pending": 0, "dead": 1, "done": 0}

        retried = await client.post(f"{OUTBOX}/{message_id}/retry", headers=operator)
        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "pending"
        assert retried.json()["attempts"] == 0

        receiver.fixed = True
        dispatcher = Dispatcher(sessions, clock, {"webhook": receiver}, rng=random.Random(3))
        assert await dispatcher.drain() == {"done": 1}
        assert receiver.received == ["budget-80-ops"]
        done = (await client.get(OUTBOX, params={"state": "done"}, headers=operator)).json()
        assert [d["id"] for d in done] == [message_id]

        again = await client.post(f"{OUTBOX}/{message_id}/retry", headers=operator)
        assert again.status_code == 409
        assert "delivered" in again.json()["detail"]
        assert await dispatcher.drain() == {}
        assert receiver.received == ["budget-80-ops"]

    async def test_bad_state_and_unknown_ids_are_clear_errors(
        self, client: AsyncTestClient, db: AsyncSession
    ) -> None:
        operator = await _operator(client, db)
        bad = await client.get(OUTBOX, params={"state": "lost"}, headers=operator)
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert "state" in bad.text
        missing = await client.post(f"{OUTBOX}/obx_nope/retry", headers=operator)
        assert missing.status_code == 404
