"""Inference endpoints of the current organization in the portal: the list (with token
usage per hour and the model governance switch), the create form with the models of the
allowed regions' stores, and one endpoint's replicas, versions, approvals, traffic split,
scaling, timeline, live metrics and how to call it.

Every page calls the endpoints services with the caller's TenantScope; an endpoint of
another organization is a 404 like any other missing one.
"""

from __future__ import annotations

from typing import Any

from portal.pages.endpoints import actions, create, detail, listing

# /endpoints/new before /endpoints/{name}: the static path must be tried first.
ROUTES: list[Any] = [*listing.ROUTES, *create.ROUTES, *detail.ROUTES, *actions.ROUTES]
