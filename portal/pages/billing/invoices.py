"""Invoices and credit notes of the current organization: the list, one document with its
lines and taxes, its printable view (the same HTML document the API serves) and its CSV.

An invoice of another organization is a 404 like any missing one: the services look it
up inside the caller's organization only."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices import service
from billing.invoices.documents import document
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from portal.pages.billing.common import current_org, page

InvoiceId = Annotated[str, Parameter(max_length=40)]
KIND_LABELS = {"invoice": "Invoice", "credit_note": "Credit note"}


@get("/billing/invoices", opt=tenant(Permission.BILLING_READ), name="portal:invoices")
async def invoice_list(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession
) -> Template:
    org_id = tenant.principal.default_org_id
    context: dict[str, Any] = {"page_title": "Invoices", "kind_labels": KIND_LABELS}
    if org_id is not None:
        context["invoices"] = await service.list_invoices(db, tenant, org_id)
    return await page(request, db, tenant, "billing/invoices.html", context, tab="invoices")


@get(
    "/billing/invoices/{invoice_id:str}",
    opt=tenant(Permission.BILLING_READ),
    name="portal:invoice",
)
async def invoice_detail(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, invoice_id: InvoiceId
) -> Template:
    org_id = current_org(tenant)
    invoice = await service.get_invoice(db, tenant, org_id, invoice_id)
    related = [
        i
        for i in await service.list_invoices(db, tenant, org_id)
        if i.corrects_id == invoice.id or i.id == invoice.corrects_id
    ]
    title = f"{KIND_LABELS.get(invoice.kind, 'Invoice')} {invoice.number or '(draft)'}"
    context = {
        "page_title": title,
        "title": title,
        "invoice": invoice,
        "related": related,
        "kind_labels": KIND_LABELS,
    }
    return await page(request, db, tenant, "billing/invoice.html", context, tab="invoices")


@get(
    "/billing/invoices/{invoice_id:str}/print",
    opt=tenant(Permission.BILLING_READ),
    name="portal:invoice-print",
)
async def invoice_print(
    tenant: TenantScope, db: AsyncSession, invoice_id: InvoiceId
) -> Response[str]:
    """The invoice as one printable HTML document (print it, or save it as PDF)."""
    invoice = await service.get_invoice(db, tenant, current_org(tenant), invoice_id)
    return await document(db, invoice, "html")


@get(
    "/billing/invoices/{invoice_id:str}/invoice.csv",
    opt=tenant(Permission.BILLING_READ),
    name="portal:invoice-csv",
)
async def invoice_csv(
    tenant: TenantScope, db: AsyncSession, invoice_id: InvoiceId
) -> Response[str]:
    invoice = await service.get_invoice(db, tenant, current_org(tenant), invoice_id)
    return await document(db, invoice, "csv")


ROUTES = [invoice_list, invoice_detail, invoice_print, invoice_csv]
