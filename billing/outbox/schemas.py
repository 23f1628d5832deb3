"""Outbox deliveries as operators see them (never the payload: it may carry addresses)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

DeliveryState = Literal["pending", "dead", "done"]


class DeliveryRead(msgspec.Struct):
    id: str
    key: str
    topic: str
    org_id: str | None
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    done_at: datetime | None
    dead_at: datetime | None
    last_error: str


class DeliveryCounts(msgspec.Struct):
    pending: int
    dead: int
    done: int
