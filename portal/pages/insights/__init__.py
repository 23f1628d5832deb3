"""Waste and right-sizing in the portal: the customer's waste dashboard (money and GPU-hours
wasted, a utilization heatmap, the advice with Apply, Dismiss and Snooze) and the
operator's fleet page (utilization, power, energy and stranded capacity per region).

Pages read through the telemetry and insights services with the caller's TenantScope;
reading is insights:read, acting on advice insights:write, the fleet page inventory:read.
"""

from __future__ import annotations

from typing import Any

from portal.pages.insights import actions, dashboard, fleet

ROUTES: list[Any] = [*dashboard.ROUTES, *actions.ROUTES, *fleet.ROUTES]
