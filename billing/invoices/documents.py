"""The HTTP answer carrying an invoice document (HTML to print, or CSV to download)."""

from __future__ import annotations

from litestar import Response
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices.render import invoice_csv, invoice_html
from billing.invoices.schemas import InvoiceRead
from control_plane.identity import organizations
from control_plane.inventory.capacity import region_billing_facts

__all__ = ["document", "filename"]

SELLER = "Sovereign GPU Cloud"


def filename(invoice: InvoiceRead, extension: str) -> str:
    return f"{invoice.number or invoice.id}.{extension}"


async def document(db: AsyncSession, invoice: InvoiceRead, format: str) -> Response[str]:
    if format == "csv":
        return Response(
            invoice_csv(invoice), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename(invoice, "csv")}"'},
        )  # fmt: skip
    org = await organizations.find_org(db, invoice.org_id)
    regions = await region_billing_facts(db)
    region = next((ln.dimensions["region"] for ln in invoice.lines
                   if ln.dimensions.get("region") in regions), "")  # fmt: skip
    seller = {"name": SELLER, "region": region or "-",
              "jurisdiction": regions[region][1] if region else "-"}  # fmt: skip
    html = invoice_html(invoice, seller, org.name if org else invoice.org_id)
    return Response(html, media_type="text/html; charset=utf-8")
