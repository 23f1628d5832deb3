"""Cost answers."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

Cheaper = Literal["allocation", "usage", "same", "unknown"]


class EndpointCost(msgspec.Struct):
    """One endpoint over a period, before tax, in the region's currency. ``allocation``:
    the GPU-hours its replicas held at the GPU-hour price; ``usage``: its tokens at the
    token prices. Per million tokens (input and output together) when it served any."""

    endpoint: str
    currency: str
    since: datetime
    until: datetime
    gpu_hours: Decimal
    tokens_in: int
    tokens_out: int
    allocation_cost: Decimal
    usage_cost: Decimal
    allocation_per_million: Decimal | None
    usage_per_million: Decimal | None
    cheaper: Cheaper
