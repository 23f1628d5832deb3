"""Every portal page handler, one module per area."""

from __future__ import annotations

from typing import Any

from portal.pages import audit, auth, dashboard, inventory, projects

ROUTES: list[Any] = [
    *auth.ROUTES,
    *dashboard.ROUTES,
    *projects.ROUTES,
    *inventory.ROUTES,
    *audit.ROUTES,
]
