"""Tenancies of the current organization in the portal: the list (with quotas and GPUs held
over time), the create form with its shape picker and shape suggestion, and one tenancy's
progress, timeline, allocations, resize and release, and reaching its machine (power and
console of a VM, a Kubernetes namespace's kubeconfig shown once and rotated).

Every page calls the tenancies services with the caller's TenantScope; a tenancy of
another organization is a 404 like any other missing one.
"""

from __future__ import annotations

from typing import Any

from portal.pages.tenancies import create, detail, listing, machine

# /tenancies/new before /tenancies/{id}: the static path must be tried first.
ROUTES: list[Any] = [*listing.ROUTES, *create.ROUTES, *detail.ROUTES, *machine.ROUTES]
