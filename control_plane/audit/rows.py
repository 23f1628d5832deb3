"""Reading stored entries back as :class:`AuditEntry` (every column but the row id)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.orm import InstrumentedAttribute

from control_plane.audit.chain import AuditEntry
from control_plane.audit.models import AuditEntryRow

_FIELDS = tuple(AuditEntry.__dataclass_fields__)


def entry_columns() -> tuple[InstrumentedAttribute[Any], ...]:
    return tuple(getattr(AuditEntryRow, name) for name in _FIELDS)


def to_entry(columns: RowMapping) -> AuditEntry:
    return AuditEntry(**{name: columns[name] for name in _FIELDS})
