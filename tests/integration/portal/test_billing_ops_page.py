"""The operator's billing page: price book versions shown and the next one published from
the page (a bad book is refused with the reason), a month's invoice run, and its drafts
finalized and marked paid; plain operators and tenants are kept out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.dispatch import Dispatcher
from billing.outbox.service import enqueue
from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from tests.fixtures.factories import Tenant, login, make_user
from tests.integration.billing.conftest import (
    book,
    catalog,
    customer,
    gpu_usage,
    operator,
    store,
)
from tests.integration.portal.test_tenancy_pages import HTML, Client, text_of

PAGE = "/operator/billing"
# The billing suite's fixtures (catalog is autouse), re-exported so pytest finds them here.
__all__ = ["book", "catalog", "customer", "operator"]


async def _operator(client: Client, db: AsyncSession, role: ProviderRole) -> str:
    account = await make_user(db, provider_role=role)
    await db.commit()
    return (await login(client, account))["X-CSRF-Token"]


def _last_month(clock: OffsetClock) -> tuple[str, datetime]:
    first = clock.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (first - timedelta(days=1)).replace(day=1)
    return start.strftime("%Y-%m"), start


class TestOperatorBilling:
    async def test_publish_run_finalize_and_mark_paid(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        book: dict[str, Any],
    ) -> None:
        month, start = _last_month(clock)
        await store(
            db, [gpu_usage(customer, "t1", start + timedelta(days=3, hours=15), 7200)], clock.now()
        )
        csrf = await _operator(client, db, ProviderRole.OPERATOR_ADMIN)

        page = await client.get(PAGE, params={"region": "ca-qc-1", "month": month}, headers=HTML)
        bad = await client.post(
            f"{PAGE}/price-books",
            headers=HTML,
            data={"_csrf": csrf, "region": "ca-qc-1", "month": month, "book": '{"rates": []}'},
        )
        book_v2 = {
            "effective_from": (clock.now() + timedelta(days=1)).isoformat(),
            "rates": [{"usage_type": "gpu_seconds", "unit_price": "3.50"}],
        }
        good = await client.post(
            f"{PAGE}/price-books",
            headers=HTML,
            follow_redirects=False,
            data={"_csrf": csrf, "region": "ca-qc-1", "month": month, "book": json.dumps(book_v2)},
        )
        ran = await client.post(
            f"{PAGE}/runs", headers=HTML, data={"_csrf": csrf, "region": "ca-qc-1", "month": month}
        )

        assert page.status_code == 200
        assert 'data-testid="book-v1"' in page.text
        assert bad.status_code == 400
        assert "Not a valid price book" in text_of(bad.text)
        assert good.status_code == 303
        words = text_of(ran.text)
        assert "Invoice run done" in words
        assert "Version 2 from" in words
        assert customer.org_id in words
        assert "Draft" in words
        invoice_id = ran.text.split("/operator/billing/invoices/", 1)[1].split("/", 1)[0]

        final = await client.post(
            f"{PAGE}/invoices/{invoice_id}/finalize",
            headers=HTML,
            data={"_csrf": csrf, "region": "ca-qc-1", "month": month},
        )
        paid = await client.post(
            f"{PAGE}/invoices/{invoice_id}/paid",
            headers=HTML,
            data={"_csrf": csrf, "region": "ca-qc-1", "month": month},
        )

        assert "Invoice finalized." in text_of(final.text)
        assert "INV-" in final.text
        assert "Invoice marked paid." in text_of(paid.text)
        assert "Paid" in text_of(paid.text)

    async def test_a_delivery_given_up_on_is_shown_and_sent_again(
        self, client: Client, db: AsyncSession, clock: OffsetClock, customer: Tenant
    ) -> None:
        await enqueue(db, key="webhook:iso:1", topic="webhook", org_id=customer.org_id,
                      payload={"budget_id": "bud_gone", "event": {}}, now=clock.now())  # fmt: skip
        await db.commit()
        sessions = async_sessionmaker(db.bind, expire_on_commit=False)
        assert await Dispatcher(sessions, clock, {}).drain() == {"dead": 1}
        csrf = await _operator(client, db, ProviderRole.OPERATOR_ADMIN)

        page = await client.get(PAGE, headers=HTML)
        assert page.status_code == 200
        dead = page.text.split('data-testid="dead-deliveries"', 1)[1].split("</table>", 1)[0]
        assert customer.org_id in dead
        assert "no sender for topic" in dead
        message_id = dead.split("/operator/billing/deliveries/", 1)[1].split("/", 1)[0]

        retried = await client.post(
            f"{PAGE}/deliveries/{message_id}/retry",
            headers=HTML,
            data={"_csrf": csrf, "region": "ca-qc-1", "month": "2026-10"},
        )
        assert retried.status_code == 200
        words = text_of(retried.text)
        assert "Delivery queued again" in words
        assert "Nothing given up on." in words
        counts = retried.text.split('data-testid="delivery-counts">', 1)[1].split("</dl>")[0]
        assert text_of(counts).split() == ["Waiting", "1", "Given", "up", "0", "Delivered", "0"]
        again = await client.post(
            f"{PAGE}/deliveries/{message_id}/retry",
            headers=HTML,
            data={"_csrf": csrf, "region": "ca-qc-1", "month": "2026-10"},
        )
        assert again.status_code == 409
        assert "only dead ones are retried" in text_of(again.text)

    async def test_plain_operators_and_tenants_are_kept_out(
        self, client: Client, db: AsyncSession, customer: Tenant
    ) -> None:
        await _operator(client, db, ProviderRole.OPERATOR)
        operator = await client.get(PAGE, headers=HTML)
        client.cookies.clear()
        await login(client, customer.accounts[TenantRole.OWNER])
        owner = await client.get(PAGE, headers=HTML)

        assert operator.status_code == 403
        assert owner.status_code == 403
        assert 'href="/operator/billing"' not in owner.text
