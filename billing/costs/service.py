"""Cost per million tokens of each inference endpoint on two bases, side by side:
renting the GPUs its replicas hold (allocation) or paying per token (usage), both at the
organization's own prices, so a customer sees which way of buying is cheaper for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from billing.costs.schemas import Cheaper, EndpointCost
from billing.invoices.inputs import load_period
from billing.rating import MILLION, Rate, Usage, major, rate_usage
from billing.taxes import TaxRule
from control_plane.errors import FieldError, InvalidInput
from control_plane.identity.authz import TenantScope

__all__ = ["endpoint_costs"]

NO_TAX = TaxRule("before tax", Decimal(0))
MAX_SPAN = timedelta(days=93)


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def endpoint_costs(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    since: datetime,
    until: datetime,
    endpoint: str | None = None,
) -> list[EndpointCost]:
    """Every endpoint with usage in [since, until) (or just ``endpoint``), busiest first."""
    scope.require(org_id)
    start, end = _hour(since), _hour(until) + timedelta(hours=1)
    if end - start > MAX_SPAN:
        raise InvalidInput(
            detail="At most 93 days at a time.", errors=[FieldError("query.since", "span too long")]
        )
    inputs = await load_period(db, start, end, [org_id])
    rows = [u for u in inputs.usage.get(org_id, ()) if u.endpoint]
    if scope.project_id is not None:
        rows = [u for u in rows if u.project == scope.project_id]
    by_endpoint: dict[tuple[str, str], list[Usage]] = {}
    for row in rows:
        if endpoint is None or row.endpoint == endpoint:
            currency = inputs.region_currency.get(row.region, "")
            by_endpoint.setdefault((row.endpoint, currency), []).append(row)
    costs = [
        _cost(ep, currency, group, inputs.rates, start, end)
        for (ep, currency), group in by_endpoint.items()
    ]
    return sorted(costs, key=lambda c: (-(c.tokens_in + c.tokens_out), c.endpoint))


def _cost(
    endpoint: str,
    currency: str,
    rows: list[Usage],
    rates: list[Rate],
    start: datetime,
    end: datetime,
) -> EndpointCost:
    gpu = [u for u in rows if u.type == "gpu_seconds"]
    tokens = [u for u in rows if u.type in ("tokens_in", "tokens_out", "cached_tokens")]
    regions = {u.region for u in rows}
    mine = [r for r in rates if r.region in regions]
    allocation = sum(
        (ln.amount_minor for ln in rate_usage(gpu, mine, currency=currency, tax=NO_TAX)), 0
    )
    usage = sum(
        (ln.amount_minor for ln in rate_usage(tokens, mine, currency=currency, tax=NO_TAX)), 0
    )
    tokens_in = int(sum((u.quantity for u in tokens if u.type == "tokens_in"), Decimal(0)))
    tokens_out = int(sum((u.quantity for u in tokens if u.type == "tokens_out"), Decimal(0)))
    served = tokens_in + tokens_out
    cheaper: Cheaper = (
        "unknown"
        if not served or not gpu
        else ("same" if allocation == usage else "allocation" if allocation < usage else "usage")
    )
    return EndpointCost(
        endpoint=endpoint,
        currency=currency,
        since=start,
        until=end,
        gpu_hours=(sum((u.quantity for u in gpu), Decimal(0)) / 3600).quantize(Decimal("0.001")),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        allocation_cost=major(allocation),
        usage_cost=major(usage),
        allocation_per_million=_per_million(allocation, served),
        usage_per_million=_per_million(usage, served),
        cheaper=cheaper,
    )


def _per_million(minor: int, tokens: int) -> Decimal | None:
    if not tokens:
        return None
    return (Decimal(minor) / 100 * MILLION / tokens).quantize(Decimal("0.0001"))
