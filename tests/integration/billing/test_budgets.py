"""Budgets: spend is measured at the organization's prices, each threshold alerts once a
month (a signed webhook and an e-mail leave through the outbox, the ledger records it),
and a hard stop at 100 % refuses new tenancies and inference with a clear problem."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.budgets.gate import BudgetStops
from billing.budgets.service import evaluate
from billing.outbox.models import OutboxMessage
from control_plane.audit.models import AuditEntryRow
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.sovereignty.keys.models import Secret
from tests.fixtures.factories import Tenant, signed_in
from tests.integration.billing.conftest import Client, gpu_usage, hour_start, must, store

TORONTO = ZoneInfo("America/Toronto")  # the book's time zone (conftest.book)
NIGHT_END_HOUR = 6


def _daytime_hour_this_month(clock: OffsetClock) -> datetime:
    """The latest hour started by now, in this UTC month, outside the book's night (00:00-
    06:00 in Toronto, where the night rate would halve the spend)."""
    now = hour_start(clock.now())
    for back in range(24):
        at = now - timedelta(hours=back)
        if at.month == now.month and at.astimezone(TORONTO).hour >= NIGHT_END_HOUR:
            return at
    raise AssertionError(f"no daytime hour in Toronto this month by {now}")


def budgets_url(org: Tenant) -> str:
    return f"/api/v1/orgs/{org.org_id}/budgets"


async def _budget(client: Client, org: Tenant, auth: dict[str, str], **body: Any) -> Any:
    body = {
        "currency": "CAD",
        "amount": "100",
        "webhook_url": "https://hooks.erable.test/b",
        "email": "ops@erable.test",
        **body,
    }
    return await must(client.put(budgets_url(org), json=body, headers=auth))


async def _spend(db: AsyncSession, org: Tenant, clock: OffsetClock, hours: int, tag: str) -> None:
    """``hours`` H100-hours at 4.00 CAD (the day rate), this month (the budget's month)."""
    at = _daytime_hour_this_month(clock)
    await store(db, [gpu_usage(org, f"{tag}", at, 3600 * hours, tenancy=f"ten_{tag}")], clock.now())


def _gate(db: AsyncSession) -> BudgetStops:
    """The gate the app wires into placement and the gateway, on the test's own engine
    (asyncpg connections cannot cross to the app's event loop)."""
    return BudgetStops(async_sessionmaker(db.bind), ttl=0)


class TestAlerts:
    async def test_each_threshold_alerts_once_through_webhook_email_and_ledger(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        settings: Settings,
        customer: Tenant,
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        created = await _budget(client, customer, biller)
        await _spend(db, customer, clock, 21, "a")  # 84.00 of 100: past 50 and 80

        first = await evaluate(db, clock.now(), settings)
        await db.commit()
        again = await evaluate(db, clock.now(), settings)
        await db.commit()
        listed = await must(client.get(budgets_url(customer), headers=biller))

        assert created["webhook_secret"].startswith("whsec_")
        assert listed[0]["webhook_secret"] is None  # shown once only
        assert (first, again) == (2, 0)
        assert [a["threshold"] for a in listed[0]["alerts"]] == [50, 80]
        assert listed[0]["spent"] == "84.00"
        messages = (await db.scalars(select(OutboxMessage).order_by(OutboxMessage.key))).all()
        assert sorted(m.topic for m in messages) == ["email", "email", "webhook", "webhook"]
        webhook = next(m for m in messages if m.topic == "webhook")
        assert webhook.payload["event"]["type"] == "budget.threshold_crossed"
        assert created["webhook_secret"] not in str([m.payload for m in messages])
        entries = (
            await db.scalars(
                select(AuditEntryRow).where(AuditEntryRow.action == "budget.threshold_crossed")
            )
        ).all()
        assert len(entries) == 2

    async def test_the_webhook_secret_is_stored_encrypted(
        self, client: Client, db: AsyncSession, customer: Tenant, biller: dict[str, str]
    ) -> None:
        created = await _budget(client, customer, biller)

        rows = (await db.scalars(select(Secret).where(Secret.org_id == customer.org_id))).all()

        [row] = rows
        assert created["webhook_secret"].encode() not in row.ciphertext


class TestHardStop:
    async def test_a_spent_hard_stop_budget_refuses_new_tenancies_with_402(
        self,
        client: Client,
        app: Litestar,
        db: AsyncSession,
        clock: OffsetClock,
        settings: Settings,
        customer: Tenant,
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        await _budget(client, customer, biller, amount="10", hard_stop=True)
        member = await signed_in(client, customer.accounts[TenantRole.MEMBER])
        await _spend(db, customer, clock, 3, "b")  # 12.00 of 10
        await evaluate(db, clock.now(), settings)
        await db.commit()

        refused = await client.post(
            f"/api/v1/orgs/{customer.org_id}/tenancies",
            headers=member,
            json={
                "name": "train-1",
                "kind": "slurm",
                "region": "ca-qc-1",
                "gpu_model": "h100",
                "gpus_per_node": 1,
            },
        )
        gate = await _gate(db).refusal(customer.org_id, customer.project_id)

        assert refused.status_code == 402
        assert refused.json()["type"].endswith("/budget-exhausted")
        assert "10.00 CAD" in refused.json()["detail"]
        assert gate is not None  # the gateway asks the same gate

    async def test_raising_the_budget_lifts_the_stop(
        self,
        client: Client,
        app: Litestar,
        db: AsyncSession,
        clock: OffsetClock,
        settings: Settings,
        customer: Tenant,
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        await _budget(client, customer, biller, amount="10", hard_stop=True)
        await _spend(db, customer, clock, 3, "c")
        await evaluate(db, clock.now(), settings)
        await db.commit()

        stopped = await _gate(db).refusal(customer.org_id, None)
        raised = await _budget(client, customer, biller, amount="50", hard_stop=True)

        assert stopped is not None
        assert raised["stopped"] is False
        assert await _gate(db).refusal(customer.org_id, None) is None

    async def test_another_organizations_budget_stops_nobody_else(
        self,
        client: Client,
        app: Litestar,
        db: AsyncSession,
        clock: OffsetClock,
        settings: Settings,
        customer: Tenant,
        other: Tenant,
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        await _budget(client, customer, biller, amount="10", hard_stop=True)
        await _spend(db, customer, clock, 3, "d")
        await evaluate(db, clock.now(), settings)
        await db.commit()

        assert await _gate(db).refusal(customer.org_id, None) is not None
        assert await _gate(db).refusal(other.org_id, None) is None
