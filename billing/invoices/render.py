"""An invoice as documents: printable HTML (one template, used by the API and the
portal) and CSV (one row per line, amounts in major units)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from billing.invoices.schemas import InvoiceRead

__all__ = ["invoice_csv", "invoice_html"]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_TITLES = {"invoice": "Invoice", "credit_note": "Credit note"}


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


_ENV.filters["money"] = money


def invoice_html(invoice: InvoiceRead, seller: dict[str, str], org_name: str) -> str:
    return _ENV.get_template("invoice.html").render(
        invoice=invoice, title=_TITLES.get(invoice.kind, "Invoice"), seller=seller,
        org_name=org_name, customer=invoice.customer,
        invoice_customer_name=invoice.customer.get("legal_name"),
    )  # fmt: skip


CSV_COLUMNS = ("invoice", "number", "status", "currency", "period_start", "period_end",
               "position", "kind", "description", "region", "gpu_model", "tenancy_kind",
               "model", "project", "quantity", "unit", "unit_price", "amount", "tax_rule",
               "tax_rate", "tax")  # fmt: skip


def invoice_csv(invoice: InvoiceRead) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in invoice.lines:
        dims = line.dimensions
        writer.writerow((
            invoice.id, invoice.number or "", invoice.status, invoice.currency,
            invoice.period_start.isoformat(), invoice.period_end.isoformat(), line.position,
            line.kind, _cell(line.description), dims.get("region", ""), dims.get("gpu_model", ""),
            dims.get("tenancy_kind", ""), dims.get("model", ""), dims.get("project", ""),
            line.quantity, line.unit, line.unit_price, line.amount, line.tax_rule, line.tax_rate,
            line.tax,
        ))  # fmt: skip
    return out.getvalue()


def _cell(text: str) -> str:
    """No formula injection when the CSV is opened in a spreadsheet."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text
