"""Every portal page handler, one module per area."""

from __future__ import annotations

from typing import Any

from portal.pages import (
    access,
    audit,
    auth,
    billing,
    billing_ops,
    dashboard,
    endpoints,
    insights,
    inventory,
    keys,
    pools,
    projects,
    residency,
    tenancies,
)

ROUTES: list[Any] = [
    *auth.ROUTES,
    *dashboard.ROUTES,
    *tenancies.ROUTES,
    *endpoints.ROUTES,
    *pools.ROUTES,
    *projects.ROUTES,
    *inventory.ROUTES,
    *residency.ROUTES,
    *keys.ROUTES,
    *access.ROUTES,
    *audit.ROUTES,
    *billing_ops.ROUTES,
    *billing.ROUTES,
    *insights.ROUTES,
]
