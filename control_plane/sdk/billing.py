"""Usage and billing through the SDK: what was used, what it costs, invoices, budgets;
and, for operators, price books, contract terms, invoice runs and usage ingest::

    with Client(url, api_key) as client:
        report = client.usage.report(group_by=["gpu_model"], granularity="day")
        for invoice in client.billing.invoices():
            print(invoice.number, invoice.total, invoice.currency, invoice.status)
        client.billing.set_budget("CAD", "2500", hard_stop=True, email="ops@example.com")

    with Client(url) as operator:
        operator.login(email, password)
        operator.billing.run_invoices(month="2026-11")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from billing.budgets.schemas import BudgetRead, BudgetSet
from billing.invoices.schemas import (
    CreditNoteCreate,
    InvoiceRead,
    InvoiceRun,
    InvoiceRunResult,
    VoidRequest,
)
from billing.outbox.schemas import DeliveryCounts, DeliveryRead, DeliveryState
from billing.prices.schemas import (
    CommitmentCreate,
    CommitmentRead,
    CreditCreate,
    CreditRead,
    OverrideCreate,
    OverrideRead,
    PriceBookCreate,
    PriceBookRead,
    ProfileRead,
    ProfileSet,
)
from control_plane.metering.schemas import (
    IngestResult,
    SourceStatRead,
    UsageBatch,
    UsageEventIn,
    UsageReport,
)
from control_plane.sdk._http import decode
from control_plane.sdk.errors import error_from_response
from control_plane.sdk.resources import API, _OrgScoped, _seg, _without_none

__all__ = ["Billing", "Usage"]

_Invoices = list[InvoiceRead]
_Budgets = list[BudgetRead]
_Books = list[PriceBookRead]
_Credits = list[CreditRead]
_Sources = list[SourceStatRead]
_Deliveries = list[DeliveryRead]


class Usage(_OrgScoped):
    """Metered usage of an organization; batch ingest for trusted sources (operators)."""

    def report(
        self,
        org_id: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        granularity: Literal["hour", "day"] = "day",
        group_by: Sequence[str] = (),
        types: Sequence[str] = (),
        **filters: str,
    ) -> UsageReport:
        """Sums per hour or day, grouped by dimensions (region, gpu_model, tenancy_kind,
        tenancy, endpoint, model, project), filtered by any of them (``gpu_model="h100"``)."""
        params = _without_none({
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "granularity": granularity, "group_by": ",".join(group_by) or None,
            "type": ",".join(types) or None, **filters,
        })  # fmt: skip
        path = f"{API}/orgs/{_seg(self._org(org_id))}/usage"
        return self._t.call("GET", path, UsageReport, params=params)

    def ingest(self, events: Sequence[UsageEventIn]) -> IngestResult:
        """Store a batch (at most 10,000); duplicates on (source, id) are ignored and counted."""
        body = UsageBatch(events=list(events))
        return self._t.call("POST", f"{API}/metering/events", IngestResult, body=body)

    def sources(self) -> _Sources:
        return self._t.call("GET", f"{API}/metering/sources", _Sources)


class Billing(_OrgScoped):
    """Invoices, budgets, the billing profile and credits of an organization; price books
    and invoice operations for operators."""

    def _org_path(self, org_id: str | None, tail: str) -> str:
        return f"{API}/orgs/{_seg(self._org(org_id))}{tail}"

    # Tenants
    def invoices(self, org_id: str | None = None) -> _Invoices:
        return self._t.call("GET", self._org_path(org_id, "/invoices"), _Invoices)

    def invoice(self, invoice_id: str, org_id: str | None = None) -> InvoiceRead:
        path = self._org_path(org_id, f"/invoices/{_seg(invoice_id)}")
        return self._t.call("GET", path, InvoiceRead)

    def document(
        self, invoice_id: str, format: Literal["html", "csv"] = "html", org_id: str | None = None
    ) -> bytes:
        """The invoice as printable HTML or CSV (bytes, as served)."""
        path = self._org_path(org_id, f"/invoices/{_seg(invoice_id)}/document")
        response = self._t.send("GET", path, params={"format": format})
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.content

    def budgets(self, org_id: str | None = None) -> _Budgets:
        return self._t.call("GET", self._org_path(org_id, "/budgets"), _Budgets)

    def set_budget(
        self, currency: Literal["CAD", "SEK", "EUR", "USD"], amount: Decimal | str, *,
        project_id: str = "", thresholds: Sequence[int] = (50, 80, 100), hard_stop: bool = False,
        webhook_url: str = "", email: str = "", org_id: str | None = None,
    ) -> BudgetRead:  # fmt: skip
        """Create or change the monthly budget of (project, currency). A new webhook's
        signing secret is in ``webhook_secret`` of this answer only."""
        body = BudgetSet(currency=currency, amount=Decimal(amount), project_id=project_id,
                         thresholds=list(thresholds), hard_stop=hard_stop,
                         webhook_url=webhook_url, email=email)  # fmt: skip
        return self._t.call("PUT", self._org_path(org_id, "/budgets"), BudgetRead, body=body)

    def delete_budget(self, budget_id: str, org_id: str | None = None) -> None:
        self._t.call_no_content("DELETE", self._org_path(org_id, f"/budgets/{_seg(budget_id)}"))

    def profile(self, org_id: str | None = None) -> ProfileRead | None:
        """None until the billing role sets one (invoices are then taxed as domestic sales)."""
        response = self._t.send("GET", self._org_path(org_id, "/billing/profile"))
        if response.status_code < 400 and response.content.strip() == b"null":
            return None
        return decode(response, ProfileRead)

    def set_profile(self, profile: ProfileSet, org_id: str | None = None) -> ProfileRead:
        path = self._org_path(org_id, "/billing/profile")
        return self._t.call("PUT", path, ProfileRead, body=profile)

    def credits(self, org_id: str | None = None) -> _Credits:
        return self._t.call("GET", self._org_path(org_id, "/billing/credits"), _Credits)

    # Operators
    def price_books(self, region: str) -> _Books:
        return self._t.call("GET", f"{API}/regions/{_seg(region)}/price-books", _Books)

    def publish_price_book(self, region: str, book: PriceBookCreate) -> PriceBookRead:
        path = f"{API}/regions/{_seg(region)}/price-books"
        return self._t.call("POST", path, PriceBookRead, body=book, idempotency_key=True)

    def add_override(self, org: str, override: OverrideCreate) -> OverrideRead:
        path = f"{API}/billing/orgs/{_seg(org)}/overrides"
        return self._t.call("POST", path, OverrideRead, body=override, idempotency_key=True)

    def add_commitment(self, org: str, commitment: CommitmentCreate) -> CommitmentRead:
        path = f"{API}/billing/orgs/{_seg(org)}/commitments"
        return self._t.call("POST", path, CommitmentRead, body=commitment, idempotency_key=True)

    def grant_credit(self, org: str, credit: CreditCreate) -> CreditRead:
        path = f"{API}/billing/orgs/{_seg(org)}/credits"
        return self._t.call("POST", path, CreditRead, body=credit, idempotency_key=True)

    def run_invoices(
        self, *, month: str | None = None, start: datetime | None = None,
        end: datetime | None = None, org_ids: Sequence[str] | None = None,
    ) -> InvoiceRunResult:  # fmt: skip
        body = InvoiceRun(month=month, start=start, end=end,
                          org_ids=list(org_ids) if org_ids is not None else None)  # fmt: skip
        return self._t.call("POST", f"{API}/billing/invoices/runs", InvoiceRunResult, body=body)

    def _invoice_action(self, invoice_id: str, action: str, body: Any = None) -> InvoiceRead:
        path = f"{API}/billing/invoices/{_seg(invoice_id)}/{action}"
        return self._t.call("POST", path, InvoiceRead, body=body)

    def finalize(self, invoice_id: str) -> InvoiceRead:
        return self._invoice_action(invoice_id, "finalize")

    def mark_paid(self, invoice_id: str) -> InvoiceRead:
        return self._invoice_action(invoice_id, "paid")

    def void(self, invoice_id: str, reason: str) -> InvoiceRead:
        return self._invoice_action(invoice_id, "void", VoidRequest(reason=reason))

    def credit_note(self, invoice_id: str, amount: Decimal | str, reason: str) -> InvoiceRead:
        body = CreditNoteCreate(amount=Decimal(amount), reason=reason)
        path = f"{API}/billing/invoices/{_seg(invoice_id)}/credit-notes"
        return self._t.call("POST", path, InvoiceRead, body=body, idempotency_key=True)

    def deliveries(
        self, state: DeliveryState = "dead", *, topic: str | None = None, limit: int = 100
    ) -> _Deliveries:
        """Outbox deliveries (webhooks, e-mail, Stripe) in ``state``, newest first."""
        params = _without_none({"state": state, "topic": topic, "limit": limit})
        return self._t.call("GET", f"{API}/billing/outbox", _Deliveries, params=params)

    def delivery_counts(self) -> DeliveryCounts:
        return self._t.call("GET", f"{API}/billing/outbox/counts", DeliveryCounts)

    def retry_delivery(self, message_id: str) -> DeliveryRead:
        """Send a dead delivery again (same idempotency key for the receiver)."""
        path = f"{API}/billing/outbox/{_seg(message_id)}/retry"
        return self._t.call("POST", path, DeliveryRead)
