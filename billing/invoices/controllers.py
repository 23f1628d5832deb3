"""Invoice API: operators run, finalize, mark paid, void and credit; tenants list, read
and download their invoices (HTML to print, CSV)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices import service
from billing.invoices.documents import document
from billing.invoices.schemas import (
    CreditNoteCreate,
    InvoiceRead,
    InvoiceRun,
    InvoiceRunResult,
    VoidRequest,
)
from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.settings import Settings

OrgId = Annotated[str, Parameter(max_length=40)]
InvoiceId = Annotated[str, Parameter(max_length=40)]
OPERATE = provider(ProviderPermission.BILLING_OPERATE)


class OperatorInvoiceController(Controller):
    path = "/api/v1/billing/invoices"
    tags = ["billing"]

    @post(
        "/runs",
        opt=OPERATE,
        status_code=HTTP_200_OK,
        summary="Rate a month (or [start, end)) into drafts; finalized invoices are kept",
    )
    async def run(
        self, data: InvoiceRun, operator: ProviderScope, db: AsyncSession, clock: Clock
    ) -> InvoiceRunResult:
        if data.month is not None:
            start, end = service.month_bounds(data.month)
        elif data.start is not None and data.end is not None:
            start, end = data.start, data.end
        else:
            raise InvalidInput(
                detail="Give month (YYYY-MM) or both start and end.",
                errors=[FieldError("body.month", "missing")],
            )
        return await service.run(db, start, end, clock.now(), data.org_ids)

    @get("/{invoice_id:str}", opt=OPERATE)
    async def get_invoice(
        self, invoice_id: InvoiceId, operator: ProviderScope, db: AsyncSession
    ) -> InvoiceRead:
        return await service.operator_invoice(db, invoice_id)

    @post(
        "/{invoice_id:str}/finalize",
        opt=OPERATE,
        status_code=HTTP_200_OK,
        summary="Freeze a draft: re-rated, numbered, credits drawn; never changes again",
    )
    async def finalize(
        self,
        invoice_id: InvoiceId,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> InvoiceRead:
        push = settings.stripe_api_key is not None
        return await service.finalize(db, invoice_id, clock.now(), push_to_stripe=push)

    @post(
        "/{invoice_id:str}/paid",
        opt=OPERATE,
        status_code=HTTP_200_OK,
        summary="Record payment received outside Stripe",
    )
    async def mark_paid(
        self, invoice_id: InvoiceId, operator: ProviderScope, db: AsyncSession, clock: Clock
    ) -> InvoiceRead:
        return await service.mark_paid(db, invoice_id, clock.now())

    @post(
        "/{invoice_id:str}/void",
        opt=OPERATE,
        status_code=HTTP_200_OK,
        summary="Void an unpaid finalized invoice (credits drawn are returned)",
    )
    async def void(
        self,
        invoice_id: InvoiceId,
        data: VoidRequest,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> InvoiceRead:
        return await service.void(db, invoice_id, data.reason, clock.now())

    @post(
        "/{invoice_id:str}/credit-notes",
        opt=OPERATE,
        status_code=HTTP_201_CREATED,
        summary="Correct a finalized invoice; the credit goes to the customer's balance",
    )
    async def credit_note(
        self,
        invoice_id: InvoiceId,
        data: CreditNoteCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> InvoiceRead:
        return await service.credit_note(db, invoice_id, data.amount, data.reason, clock.now())


class InvoiceController(Controller):
    path = "/api/v1/orgs/{org_id:str}/invoices"
    tags = ["billing"]

    @get(
        "/", opt=tenant(Permission.BILLING_READ), summary="Invoices and credit notes, newest first"
    )
    async def list_invoices(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession
    ) -> list[InvoiceRead]:
        return await service.list_invoices(db, tenant, org_id)

    @get("/{invoice_id:str}", opt=tenant(Permission.BILLING_READ), summary="One invoice with lines")
    async def get_invoice(
        self, org_id: OrgId, invoice_id: InvoiceId, tenant: TenantScope, db: AsyncSession
    ) -> InvoiceRead:
        return await service.get_invoice(db, tenant, org_id, invoice_id)

    @get(
        "/{invoice_id:str}/document",
        opt=tenant(Permission.BILLING_READ),
        summary="The invoice as printable HTML or CSV",
        media_type="text/html",
    )
    async def get_document(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        invoice_id: InvoiceId,
        tenant: TenantScope,
        db: AsyncSession,
        settings: Settings,
        format: Annotated[str, Parameter(pattern="^(html|csv)$")] = "html",
    ) -> Response[str]:
        invoice = await service.get_invoice(db, tenant, org_id, invoice_id)
        return await document(db, invoice, format)


ROUTES = [OperatorInvoiceController, InvoiceController]
