"""The operator's billing page: each region's price book versions (and publishing the
next one), invoice runs for a month, the month's invoices to finalize or mark paid, and
outbox deliveries given up on (sent again from here)."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices import service as invoices
from billing.outbox import admin as outbox
from billing.prices import service as prices
from billing.prices.schemas import PriceBookCreate
from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput, ProblemError
from control_plane.identity.authz import ProviderScope, provider
from control_plane.identity.roles import ProviderPermission, provider_allows
from control_plane.inventory import service as inventory
from portal.forms import FormState, discard, read_form
from portal.templating import collect, render

Region = Annotated[str | None, Parameter(max_length=32)]
Month = Annotated[str | None, Parameter(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
InvoiceId = Annotated[str, Parameter(max_length=40)]
MessageId = Annotated[str, Parameter(max_length=40)]
OPERATE = provider(ProviderPermission.BILLING_OPERATE)


@get("/operator/billing", opt=OPERATE, name="portal:op-billing")
async def billing_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    region: Region = None,
    month: Month = None,
    done: Annotated[str | None, Parameter(max_length=40)] = None,
) -> Template:
    return await _page(request, db, clock, operator, region, month, FormState(), notice=done or "")


@post(
    "/operator/billing/price-books",
    opt=provider(ProviderPermission.PRICES_WRITE),
    name="portal:op-price-book",
)
async def publish_book(
    request: Request[Any, Any, Any], db: AsyncSession, clock: Clock, operator: ProviderScope
) -> Response[Any]:
    form = await read_form(request, ["region", "book", "month"])
    region = form.values["region"]
    try:
        data = msgspec.json.decode(form.values["book"].encode(), type=PriceBookCreate)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        form.errors["book"] = f"Not a valid price book: {exc}"
        form.message = "The price book was not published."
    else:
        try:
            await prices.create_book(
                db, region, data, actor=operator.principal.user_id or "", now=clock.now()
            )
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            form.errors.setdefault("book", problem.detail)
        else:
            return _back(region, form.values["month"], "published")
    return await _page(
        request, db, clock, operator, region, form.values["month"], form, status_code=400
    )


@post("/operator/billing/runs", opt=OPERATE, name="portal:op-invoice-run")
async def run_month(
    request: Request[Any, Any, Any], db: AsyncSession, clock: Clock, operator: ProviderScope
) -> Response[Any]:
    form = await read_form(request, ["region", "month"])
    try:
        start, end = invoices.month_bounds(_month(form.values["month"]))
        await invoices.run(db, start, end, clock.now())
    except ProblemError as problem:
        await discard(db, problem)
        form.add_problem(problem)
        return await _page(
            request, db, clock, operator, form.values["region"], None, form, status_code=400
        )
    return _back(form.values["region"], form.values["month"], "rated")


@post(
    "/operator/billing/invoices/{invoice_id:str}/{action:str}",
    opt=OPERATE,
    name="portal:op-invoice-action",
)
async def invoice_action(
    request: Request[Any, Any, Any],
    invoice_id: InvoiceId,
    action: Annotated[str, Parameter(pattern="^(finalize|paid)$")],
    db: AsyncSession,
    clock: Clock,
) -> Response[Any]:
    form = await read_form(request, ["region", "month"])
    settings = request.app.state.settings
    if action == "finalize":
        await invoices.finalize(
            db, invoice_id, clock.now(), push_to_stripe=settings.stripe_api_key is not None
        )
    else:
        await invoices.mark_paid(db, invoice_id, clock.now())
    return _back(form.values["region"], form.values["month"], action)


@post(
    "/operator/billing/deliveries/{message_id:str}/retry",
    opt=OPERATE,
    name="portal:op-delivery-retry",
)
async def retry_delivery(
    request: Request[Any, Any, Any],
    message_id: MessageId,
    db: AsyncSession,
    clock: Clock,
) -> Response[Any]:
    form = await read_form(request, ["region", "month"])
    await outbox.retry(db, message_id, clock.now())
    return _back(form.values["region"], form.values["month"], "retried")


def _month(value: str) -> str:
    if len(value) != 7 or value[4] != "-" or not (value[:4] + value[5:]).isdigit():
        raise InvalidInput(
            detail="Months are YYYY-MM.", errors=[FieldError("body.month", "not YYYY-MM")]
        )
    return value


def _back(region: str, month: str, done: str) -> Redirect:
    query = urlencode({"region": region, "month": month, "done": done})
    return Redirect(path=f"/operator/billing?{query}", status_code=HTTP_303_SEE_OTHER)


NOTICES = {
    "published": "Price book version published.",
    "rated": "Invoice run done: drafts rated, finalized invoices kept.",
    "finalize": "Invoice finalized.",
    "paid": "Invoice marked paid.",
    "retried": "Delivery queued again: the dispatcher sends it within its next round.",
}


async def _page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    region: str | None,
    month: str | None,
    form: FormState,
    *,
    notice: str = "",
    status_code: int = 200,
) -> Template:
    regions = await collect(lambda page: inventory.list_regions(db, page))
    codes = [r.code for r in regions]
    chosen = region if region in codes else (codes[0] if codes else "")
    now = clock.now().astimezone(UTC)
    month = month or (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    start, end = invoices.month_bounds(month)
    books = await prices.list_books(db, chosen) if chosen else []
    if "book" not in form.values:
        form.values["book"] = _next_book(books, now)
    context = {
        "page_title": "Billing operations",
        "regions": [(r.code, r.name) for r in regions],
        "region": chosen,
        "month": month,
        "books": list(reversed(books)),
        "invoices": await invoices.period_invoices(db, start, end),
        "deliveries": {
            "counts": await outbox.counts(db),
            "dead": await outbox.list_deliveries(db, "dead", limit=50),
        },
        "form": form,
        "empty_form": FormState(),
        "notice": NOTICES.get(notice, ""),
        "can_price": provider_allows(
            operator.principal.provider_role, ProviderPermission.PRICES_WRITE
        ),
    }
    return await render(
        request, db, "billing_ops/index.html", context, active="op-billing", status_code=status_code
    )


def _next_book(books: list[Any], now: Any) -> str:
    """The latest version's rates, effective tomorrow: a starting point for the next one."""
    start = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    latest = books[-1] if books else None
    body: dict[str, Any] = {
        "effective_from": start.isoformat(),
        "timezone": latest.timezone if latest else "UTC",
        "night_start_hour": latest.night_start_hour if latest else 22,
        "night_end_hour": latest.night_end_hour if latest else 6,
        "rates": [msgspec.to_builtins(r) for r in latest.rates]
        if latest
        else [{"usage_type": "gpu_seconds", "gpu_model": "h100", "unit_price": "4.00"}],
    }
    return json.dumps(body, indent=2)


ROUTES: list[Any] = [billing_page, publish_book, run_month, invoice_action, retry_delivery]
