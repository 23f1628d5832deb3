"""The prices the gateway quotes on every response: the book in effect, the model's own
rate, the organization's contract; none where the region has no book."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.prices.token_prices import TokenPrices
from control_plane.clock import OffsetClock
from tests.fixtures.factories import Tenant
from tests.integration.billing.conftest import BOOKS, Client, must


async def test_book_model_rate_and_contract_make_the_quoted_price(
    client: Client,
    db: AsyncSession,
    clock: OffsetClock,
    customer: Tenant,
    other: Tenant,
    operator: dict[str, str],
) -> None:
    await must(
        client.post(
            BOOKS,
            headers=operator,
            json={
                "effective_from": (clock.now() - timedelta(days=1)).isoformat(),
                "rates": [
                    {"usage_type": "tokens_in", "unit_price": "0.20"},
                    {"usage_type": "tokens_out", "unit_price": "0.60"},
                    {"usage_type": "tokens_out", "model": "chat-v1", "unit_price": "0.90"},
                ],
            },
        ),
        201,
    )
    await must(
        client.post(
            f"/api/v1/billing/orgs/{customer.slug}/overrides",
            headers=operator,
            json={
                "region": "ca-qc-1",
                "usage_type": "tokens_out",
                "discount_percent": "50",
                "starts_at": (clock.now() - timedelta(hours=1)).isoformat(),
            },
        ),
        201,
    )
    prices = TokenPrices(async_sessionmaker(db.bind), clock)

    mine = await prices.price(customer.org_id, "ca-qc-1", "chat-v1")
    theirs = await prices.price(other.org_id, "ca-qc-1", "chat-v1")
    other_model = await prices.price(other.org_id, "ca-qc-1", "embed-v1")
    nowhere = await prices.price(other.org_id, "se-north-1", "chat-v1")

    assert mine is not None
    assert theirs is not None
    assert other_model is not None
    assert (mine.currency, mine.per_million_in, mine.per_million_out) == (
        "CAD",
        Decimal("0.20"),
        Decimal("0.45"),
    )
    assert theirs.per_million_out == Decimal("0.90")
    assert other_model.per_million_out == Decimal("0.60")
    assert mine.cost(1_000, 2_000) == Decimal("0.001100000")  # 0.0002 + 0.0009
    assert nowhere is None


async def test_a_new_book_reaches_the_quote_after_the_cache_expires(
    client: Client,
    db: AsyncSession,
    clock: OffsetClock,
    customer: Tenant,
    operator: dict[str, str],
    book: dict[str, Any],
) -> None:
    prices = TokenPrices(async_sessionmaker(db.bind), clock, ttl=0)
    before = await prices.price(customer.org_id, "ca-qc-1", "chat-v1")
    await must(
        client.post(
            BOOKS,
            headers=operator,
            json={
                "effective_from": (clock.now() + timedelta(minutes=1)).isoformat(),
                "rates": [{"usage_type": "tokens_in", "unit_price": "0.10"}],
            },
        ),
        201,
    )
    clock.advance(120)

    after = await prices.price(customer.org_id, "ca-qc-1", "chat-v1")

    assert before is not None
    assert after is not None
    assert (before.per_million_in, after.per_million_in) == (Decimal("0.20"), Decimal("0.10"))
