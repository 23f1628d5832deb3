"""Billing in the portal: the overview (usage of the last 30 days, month-to-date cost,
budgets, latest invoices, credits), the usage explorer, invoices with their printable
and CSV documents, budgets and the billing profile.

Pages read through the metering and billing services with the caller's TenantScope;
usage is for whoever holds usage:read, money for billing:read, changes for billing:write.
"""

from __future__ import annotations

from typing import Any

from portal.pages.billing import budgets, invoices, overview, profile, usage

ROUTES: list[Any] = [
    *overview.ROUTES,
    *usage.ROUTES,
    *invoices.ROUTES,
    *budgets.ROUTES,
    *profile.ROUTES,
]
