"""Imports every domain's models so ``Base.metadata`` knows all tables (Alembic, tests)."""

from __future__ import annotations

from control_plane.audit import models as _audit_models
from control_plane.db.base import Base
from control_plane.endpoints import models as _endpoints_models
from control_plane.http import models as _http_models
from control_plane.identity import models as _identity_models
from control_plane.insights import models as _insights_models
from control_plane.inventory import models as _inventory_models
from control_plane.metering import models as _metering_models
from control_plane.pools import models as _pools_models
from control_plane.sovereignty.access import models as _access_models
from control_plane.sovereignty.keys import models as _keys_models
from control_plane.sovereignty.residency import models as _residency_models
from control_plane.telemetry import models as _telemetry_models
from control_plane.tenancies import models as _tenancies_models

__all__ = ["Base", "metadata"]

_LOADED = (
    _access_models,
    _audit_models,
    _endpoints_models,
    _http_models,
    _identity_models,
    _insights_models,
    _inventory_models,
    _keys_models,
    _metering_models,
    _pools_models,
    _residency_models,
    _telemetry_models,
    _tenancies_models,
)
metadata = Base.metadata
