"""Imports billing's models so ``metadata`` (the control plane's and billing's tables)
knows every table of the distribution: Alembic and the tests use it."""

from __future__ import annotations

from billing.budgets import models as _budgets_models
from billing.invoices import models as _invoices_models
from billing.outbox import models as _outbox_models
from billing.prices import models as _prices_models
from billing.stripe import models as _stripe_models
from control_plane.db.registry import metadata

__all__ = ["metadata"]

_LOADED = (_budgets_models, _invoices_models, _outbox_models, _prices_models, _stripe_models)
