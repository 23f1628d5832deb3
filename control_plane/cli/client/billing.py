"""``cpctl usage`` and ``cpctl billing``: usage by any dimension, invoices (list, show,
download as HTML or CSV), budgets and the billing profile; for operators, price books,
contract terms, invoice runs and the invoice lifecycle, and batch usage ingest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

import click
import msgspec

from billing.invoices.schemas import InvoiceRead
from billing.prices.schemas import (
    CommitmentCreate,
    CreditCreate,
    OverrideCreate,
    PriceBookCreate,
    ProfileSet,
)
from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_one,
    emit_table,
    org_id_of,
)
from control_plane.metering.schemas import UsageEventIn

org_option = click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")
DIMENSIONS = ("region", "gpu_model", "tenancy_kind", "tenancy", "endpoint", "model", "project")
INVOICE_COLUMNS = columns(
    "id",
    "number",
    "kind",
    "status",
    "currency",
    "period_start",
    "period_end",
    "total",
    "amount_due",
)
LINE_COLUMNS = columns(
    "position", "description", "quantity", "unit", "unit_price", "amount", "tax_rule", "tax"
)
BUDGET_COLUMNS = columns(
    "id", "project_id", "currency", "amount", "spent", "percent_used", "hard_stop", "stopped"
)


@click.group("usage")
def usage_group() -> None:
    """Metered usage: GPU-seconds and tokens, by any dimension."""


@api_command(usage_group, "show")
@click.option("--since", type=click.DateTime(), help="UTC start (default: 30 days ago).")
@click.option("--until", type=click.DateTime(), help="UTC end (default: now).")
@click.option("--granularity", type=click.Choice(["hour", "day"]), default="day", show_default=True)
@click.option("--group-by", "group_by", multiple=True, type=click.Choice(DIMENSIONS))
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(["gpu_seconds", "tokens_in", "tokens_out", "cached_tokens"]),
)
@org_option
def usage_show(
    inv: Invocation,
    since: datetime | None,
    until: datetime | None,
    granularity: str,
    group_by: tuple[str, ...],
    types: tuple[str, ...],
    org: str | None,
) -> None:
    """Usage per day (or hour), e.g. ``cpctl usage show --group-by gpu_model``."""
    with inv.client() as client:
        report = client.usage.report(
            org_id_of(client, org),
            since=_utc(since),
            until=_utc(until),
            granularity=cast(Literal["hour", "day"], granularity),
            group_by=group_by,
            types=types,
        )
    if inv.json:
        emit_json(report)
        return
    rows = [
        {"period": r.period, "type": r.type, **r.group, "value": r.value, "unit": r.unit}
        for r in report.rows
    ]
    names = ["period", "type", *report.group_by, "value", "unit"]
    emit_table(rows, [(n.upper(), _cell(n)) for n in names])


@api_command(usage_group, "ingest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def usage_ingest(inv: Invocation, file: Path) -> None:
    """Send usage events from FILE (JSON Lines, one event per line) as a trusted source
    (operator-admins); batches of 10,000, duplicates counted, a bad batch refused whole."""
    decoder = msgspec.json.Decoder(UsageEventIn)
    lines = [line for line in file.read_text().splitlines() if line.strip()]
    events = [decoder.decode(line) for line in lines]
    totals = {"accepted": 0, "duplicates": 0, "amendments": 0}
    with inv.client() as client:
        for start in range(0, len(events), 10_000):
            result = client.usage.ingest(events[start : start + 10_000])
            for key in totals:
                totals[key] += getattr(result, key)
    emit_json(totals) if inv.json else click.echo(
        f"{totals['accepted']} stored ({totals['amendments']} amendments), "
        f"{totals['duplicates']} duplicates ignored"
    )


@click.group("billing")
def billing_group() -> None:
    """Invoices, budgets, the billing profile; price books and invoice runs (operators)."""


@api_command(billing_group, "invoices")
@org_option
def billing_invoices(inv: Invocation, org: str | None) -> None:
    """Invoices and credit notes, newest first."""
    with inv.client() as client:
        emit_list(inv, client.billing.invoices(org_id_of(client, org)), INVOICE_COLUMNS)


def _show_invoice(inv: Invocation, invoice: InvoiceRead) -> None:
    if inv.json:
        emit_json(invoice)
        return
    emit_one(
        inv,
        invoice,
        (
            "id",
            "number",
            "kind",
            "status",
            "currency",
            "period_start",
            "period_end",
            "subtotal",
            "tax",
            "total",
            "credits_applied",
            "amount_due",
            "digest",
        ),
    )
    click.echo("")
    emit_table(invoice.lines, LINE_COLUMNS)


@api_command(billing_group, "invoice")
@click.argument("invoice_id")
@org_option
def billing_invoice(inv: Invocation, invoice_id: str, org: str | None) -> None:
    """Show INVOICE_ID with its lines (each with the tax rule applied)."""
    with inv.client() as client:
        _show_invoice(inv, client.billing.invoice(invoice_id, org_id_of(client, org)))


@api_command(billing_group, "download")
@click.argument("invoice_id")
@click.option(
    "--format", "fmt", type=click.Choice(["html", "csv"]), default="html", show_default=True
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@org_option
def billing_download(
    inv: Invocation, invoice_id: str, fmt: str, out: Path, org: str | None
) -> None:
    """Save INVOICE_ID as printable HTML or CSV to --out."""
    with inv.client() as client:
        content = client.billing.document(
            invoice_id, cast(Literal["html", "csv"], fmt), org_id_of(client, org)
        )
    out.write_bytes(content)
    click.echo(f"wrote {out} ({len(content)} bytes)", err=True)


@api_command(billing_group, "budgets")
@org_option
def billing_budgets(inv: Invocation, org: str | None) -> None:
    """Budgets with month-to-date spend."""
    with inv.client() as client:
        emit_list(inv, client.billing.budgets(org_id_of(client, org)), BUDGET_COLUMNS)


@api_command(billing_group, "set-budget")
@click.option("--currency", type=click.Choice(["CAD", "SEK", "EUR", "USD"]), required=True)
@click.option("--amount", type=Decimal, required=True, help="Per calendar month, before tax.")
@click.option("--project", "project_id", default="", help="Project id (default: whole org).")
@click.option("--thresholds", default="50,80,100", show_default=True)
@click.option("--hard-stop", is_flag=True, help="Refuse new tenancies and inference at 100 %.")
@click.option("--webhook-url", default="")
@click.option("--email", default="")
@org_option
def billing_set_budget(
    inv: Invocation,
    currency: str,
    amount: Decimal,
    project_id: str,
    thresholds: str,
    hard_stop: bool,
    webhook_url: str,
    email: str,
    org: str | None,
) -> None:
    """Create or change a monthly budget; a new webhook's signing secret is shown once."""
    try:
        percents = [int(t) for t in thresholds.split(",") if t.strip()]
    except ValueError as exc:
        raise click.BadParameter("comma-separated percents, e.g. 50,80,100") from exc
    with inv.client() as client:
        budget = client.billing.set_budget(
            cast(Literal["CAD", "SEK", "EUR", "USD"], currency),
            amount,
            project_id=project_id,
            thresholds=percents,
            hard_stop=hard_stop,
            webhook_url=webhook_url,
            email=email,
            org_id=org_id_of(client, org),
        )
    emit_one(
        inv,
        budget,
        ("id", "currency", "amount", "thresholds", "hard_stop", "spent", "webhook_url", "email"),
    )
    if budget.webhook_secret and not inv.json:
        click.echo(f"\nWebhook signing secret (shown once): {budget.webhook_secret}")


@api_command(billing_group, "delete-budget")
@click.argument("budget_id")
@org_option
def billing_delete_budget(inv: Invocation, budget_id: str, org: str | None) -> None:
    """Delete BUDGET_ID."""
    with inv.client() as client:
        client.billing.delete_budget(budget_id, org_id_of(client, org))
    click.echo(f"deleted {budget_id}", err=True)


@api_command(billing_group, "set-profile")
@click.option("--legal-name", required=True)
@click.option("--country", required=True, help="ISO 3166 alpha-2, e.g. CA.")
@click.option("--subdivision", default="", help="Province or state, e.g. QC.")
@click.option("--tax-id", default="", help="VAT or business number.")
@click.option("--email", required=True, help="Where invoices go.")
@org_option
def billing_set_profile(
    inv: Invocation,
    legal_name: str,
    country: str,
    subdivision: str,
    tax_id: str,
    email: str,
    org: str | None,
) -> None:
    """Set who is billed and where (decides the tax rule on every line)."""
    body = ProfileSet(
        legal_name=legal_name,
        country=country.upper(),
        subdivision=subdivision.upper(),
        tax_id=tax_id,
        email=email,
    )
    with inv.client() as client:
        profile = client.billing.set_profile(body, org_id_of(client, org))
    emit_one(inv, profile, ("legal_name", "country", "subdivision", "tax_id", "email"))


# Operators


@api_command(billing_group, "prices")
@click.argument("region")
def billing_prices(inv: Invocation, region: str) -> None:
    """Every version of REGION's price book."""
    with inv.client() as client:
        books = client.billing.price_books(region)
    if inv.json:
        emit_json(books)
        return
    for book in books:
        click.echo(
            f"v{book.version} from {book.effective_from} ({book.currency}, night "
            f"{book.night_start_hour}-{book.night_end_hour} {book.timezone})"
        )
        emit_table(
            book.rates,
            columns(
                "usage_type",
                "gpu_model",
                "tenancy_kind",
                "model",
                "unit_price",
                "night_unit_price",
                "minimum_seconds",
            ),
        )


@api_command(billing_group, "publish-prices")
@click.argument("region")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def billing_publish_prices(inv: Invocation, region: str, file: Path) -> None:
    """Publish a new version of REGION's book from FILE (JSON: effective_from, rates, ...)."""
    book = msgspec.json.decode(file.read_bytes(), type=PriceBookCreate)
    with inv.client() as client:
        created = client.billing.publish_price_book(region, book)
    emit_one(inv, created, ("id", "region", "currency", "version", "effective_from"))


@api_command(billing_group, "grant-credit")
@click.argument("org")
@click.option("--currency", type=click.Choice(["CAD", "SEK", "EUR", "USD"]), required=True)
@click.option("--amount", type=Decimal, required=True)
@click.option("--reason", required=True)
def billing_grant_credit(
    inv: Invocation, org: str, currency: str, amount: Decimal, reason: str
) -> None:
    """Grant ORG a credit, drawn before charging."""
    body = CreditCreate(currency=cast(Any, currency), amount=amount, reason=reason)
    with inv.client() as client:
        emit_one(inv, client.billing.grant_credit(org, body), ("id", "currency", "amount"))


@api_command(billing_group, "commit")
@click.argument("org")
@click.option("--region", required=True)
@click.option("--gpu-model", required=True)
@click.option("--gpus", type=Decimal, required=True)
@click.option("--hourly-price", type=Decimal, required=True, help="Per GPU-hour.")
@click.option("--starts", type=click.DateTime(), required=True, help="UTC.")
@click.option("--ends", type=click.DateTime(), required=True, help="UTC.")
def billing_commit(
    inv: Invocation,
    org: str,
    region: str,
    gpu_model: str,
    gpus: Decimal,
    hourly_price: Decimal,
    starts: datetime,
    ends: datetime,
) -> None:
    """Reserve capacity for ORG: billed every hour of the term, used or not."""
    body = CommitmentCreate(
        region=region,
        gpu_model=gpu_model,
        gpus=gpus,
        hourly_price=hourly_price,
        starts_at=_utc(starts) or starts,
        ends_at=_utc(ends) or ends,
    )
    with inv.client() as client:
        emit_one(inv, client.billing.add_commitment(org, body), ("id", "gpus", "hourly_price"))


@api_command(billing_group, "override")
@click.argument("org")
@click.option("--region", required=True)
@click.option(
    "--usage-type",
    required=True,
    type=click.Choice(["gpu_seconds", "tokens_in", "tokens_out", "cached_tokens"]),
)
@click.option("--gpu-model", default="", help="Only this GPU model (default: any).")
@click.option("--model", default="", help="Only this model (default: any).")
@click.option("--price", type=Decimal, help="Contract price per GPU-hour or million tokens.")
@click.option("--discount", type=Decimal, help="Percent off the book's price instead.")
@click.option("--starts", type=click.DateTime(), required=True, help="UTC.")
@click.option("--ends", type=click.DateTime(), help="UTC (default: open-ended).")
def billing_override(
    inv: Invocation,
    org: str,
    region: str,
    usage_type: str,
    gpu_model: str,
    model: str,
    price: Decimal | None,
    discount: Decimal | None,
    starts: datetime,
    ends: datetime | None,
) -> None:
    """Give ORG a contract price (or discount) for matching usage."""
    body = OverrideCreate(
        region=region,
        usage_type=cast(Any, usage_type),
        gpu_model=gpu_model,
        model=model,
        unit_price=price,
        discount_percent=discount,
        starts_at=_utc(starts) or starts,
        ends_at=_utc(ends),
    )
    with inv.client() as client:
        created = client.billing.add_override(org, body)
    emit_one(
        inv,
        created,
        (
            "id",
            "region",
            "usage_type",
            "gpu_model",
            "model",
            "unit_price",
            "discount_percent",
            "starts_at",
            "ends_at",
        ),
    )


@api_command(billing_group, "run")
@click.option("--month", help="YYYY-MM (a calendar month, UTC).")
@click.option("--start", type=click.DateTime(), help="On demand: UTC start.")
@click.option("--end", type=click.DateTime(), help="On demand: UTC end.")
def billing_run(
    inv: Invocation, month: str | None, start: datetime | None, end: datetime | None
) -> None:
    """Rate a period into draft invoices (finalized ones are kept)."""
    with inv.client() as client:
        result = client.billing.run_invoices(month=month, start=_utc(start), end=_utc(end))
    emit_one(
        inv,
        result,
        ("period_start", "period_end", "organizations", "drafts", "unchanged", "finalized_kept"),
    )


@api_command(billing_group, "finalize")
@click.argument("invoice_id")
def billing_finalize(inv: Invocation, invoice_id: str) -> None:
    """Freeze draft INVOICE_ID: re-rated, numbered, credits drawn."""
    with inv.client() as client:
        _show_invoice(inv, client.billing.finalize(invoice_id))


@api_command(billing_group, "mark-paid")
@click.argument("invoice_id")
def billing_mark_paid(inv: Invocation, invoice_id: str) -> None:
    """Record payment of INVOICE_ID received outside Stripe."""
    with inv.client() as client:
        _show_invoice(inv, client.billing.mark_paid(invoice_id))


@api_command(billing_group, "void")
@click.argument("invoice_id")
@click.option("--reason", required=True)
def billing_void(inv: Invocation, invoice_id: str, reason: str) -> None:
    """Void unpaid INVOICE_ID (credits drawn are returned)."""
    with inv.client() as client:
        _show_invoice(inv, client.billing.void(invoice_id, reason))


@api_command(billing_group, "credit-note")
@click.argument("invoice_id")
@click.option("--amount", type=Decimal, required=True, help="Before tax.")
@click.option("--reason", required=True)
def billing_credit_note(inv: Invocation, invoice_id: str, amount: Decimal, reason: str) -> None:
    """Correct finalized INVOICE_ID with a credit note (credited to the customer)."""
    with inv.client() as client:
        _show_invoice(inv, client.billing.credit_note(invoice_id, amount, reason))


DELIVERY_COLUMNS = columns("id", "topic", "org_id", "state", "attempts", "created_at", "last_error")


@api_command(billing_group, "deliveries")
@click.option(
    "--state", type=click.Choice(["dead", "pending", "done"]), default="dead", show_default=True
)
@click.option("--topic", help="webhook, email, stripe.customer, stripe.invoice ...")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
def billing_deliveries(inv: Invocation, state: str, topic: str | None, limit: int) -> None:
    """Outbox deliveries (webhooks, e-mail, Stripe) in a state, newest first; with the
    pending/dead/done counts."""
    with inv.client() as client:
        rows = client.billing.deliveries(cast(Any, state), topic=topic, limit=limit)
        totals = client.billing.delivery_counts()
    emit_list(inv, rows, DELIVERY_COLUMNS)
    if not inv.json:
        click.echo(f"pending {totals.pending}, dead {totals.dead}, done {totals.done}", err=True)


@api_command(billing_group, "retry-delivery")
@click.argument("message_id")
def billing_retry_delivery(inv: Invocation, message_id: str) -> None:
    """Send dead delivery MESSAGE_ID again once its cause is fixed (the receiver sees the
    same idempotency key, so nothing lands twice)."""
    with inv.client() as client:
        retried = client.billing.retry_delivery(message_id)
    emit_one(inv, retried, ("id", "topic", "state", "attempts", "next_attempt_at"))


def _cell(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name, "")


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


__all__ = ["billing_group", "usage_group"]
