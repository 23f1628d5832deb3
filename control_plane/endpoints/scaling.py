"""How many replicas an endpoint should run: pure arithmetic on the gateway's signals.

Scale on generated tokens per second (what a replica's GPU is busy with) and on requests
waiting, never below ``min_replicas`` or above ``max_replicas``. Scaling down goes one
replica at a time; to zero only after ``scale_to_zero_after`` seconds without a request
(``min_replicas`` 0 and that setting both allow it); the next request then starts one
(a cold start held by the gateway, never refused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Signals", "desired_replicas"]


@dataclass(frozen=True, slots=True)
class Signals:
    tokens_per_second: float
    in_flight: int
    idle_seconds: float | None  # since the last request; None when never called


def desired_replicas(
    *,
    current: int,
    min_replicas: int,
    max_replicas: int,
    target_tokens_per_s: int,
    target_queue_per_replica: int,
    scale_to_zero_after: int | None,
    signals: Signals,
) -> int:
    by_tokens = math.ceil(signals.tokens_per_second / target_tokens_per_s)
    by_queue = math.ceil(signals.in_flight / target_queue_per_replica)
    wanted = max(by_tokens, by_queue)
    idle = signals.idle_seconds
    may_sleep = (
        min_replicas == 0
        and scale_to_zero_after is not None
        and signals.in_flight == 0
        and (idle is None or idle >= scale_to_zero_after)
    )
    floor = 0 if may_sleep else max(min_replicas, 1 if current else 0)
    wanted = max(wanted, floor)
    if wanted < current and wanted > 0:
        wanted = current - 1  # down one step at a time (load may come back)
    return max(min(wanted, max_replicas), min_replicas if not may_sleep else 0)
