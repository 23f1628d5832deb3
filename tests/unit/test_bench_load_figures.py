"""How bench.load turns a sweep into the level's figures (not timed): the highest sustained
rate is the highest step served in full with no error, judged against the p99 goal there;
the headroom figure is the highest such step with room left on the replicas and the VM."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.load import ROLES, LoopLag, choose, cpu_by_role


def _step(rps: float, p99: float, *, errors: int = 0, served: float = 1.0,
          core: float = 0.5, busy: float | None = 0.5) -> dict[str, Any]:  # fmt: skip
    return {"target_rps": rps, "rps": round(rps * served, 1), "p50_ms": 5.0, "p99_ms": p99,
            "errors": errors, "replica_core_share": core, "machine_busy_share": busy}  # fmt: skip


SATURATION: dict[str, Any] = {"rps": 400.0, "errors": 0}


def test_the_goal_is_judged_at_the_highest_rate_served_in_full() -> None:
    sweep = [_step(100, 20), _step(200, 40, core=0.8, busy=0.8), _step(300, 180, core=0.95),
             _step(350, 900, served=0.9)]  # fmt: skip
    level = choose(SATURATION, sweep)
    assert (level["rps"], level["p99_ms"], level["within_goal"]) == (300, 180, False)
    assert level["rps_within_p99_goal"] == 200
    # With headroom: the 200 req/s step had a replica at 80 % of a core.
    assert level["with_headroom"]["rps"] == 100
    assert level["with_headroom"]["within_goal"] is True


def test_a_step_with_errors_is_not_sustained_and_headroom_needs_a_quiet_machine() -> None:
    sweep = [_step(100, 20, busy=0.6), _step(200, 30, busy=0.9), _step(300, 50, errors=1)]
    level = choose(SATURATION, sweep)
    assert (level["rps"], level["within_goal"]) == (200, True)
    assert level["with_headroom"]["rps"] == 100  # the 200 req/s step: VM 90 % busy
    assert level["errors_all_steps"] == 1


def test_no_step_with_headroom_reports_none() -> None:
    # A replica at 90 % of a core; a VM whose load was not measured is not counted as idle.
    level = choose(SATURATION, [_step(100, 20, core=0.9), _step(150, 30, busy=None)])
    assert level["with_headroom"] is None
    assert (level["rps"], level["within_goal"]) == (150, True)


def test_the_vm_cpu_is_split_by_role_per_process() -> None:
    before = {1: ("serving_replicas", 10.0), 2: ("database", 4.0), 3: ("database", 1.0)}
    # Process 3 (a database connection) ended; 4 (a new one) started during the step.
    after = {1: ("serving_replicas", 13.0), 2: ("database", 5.0), 4: ("database", 0.5)}
    shares = cpu_by_role(before, after, capacity_seconds=10.0)
    assert shares["serving_replicas"] == 0.3
    assert shares["database"] == 0.15  # 1.0 + 0.5, not lowered by the connection that ended
    assert shares["inference_server"] == 0.0
    assert set(shares) == set(ROLES)


async def test_the_loop_lag_probe_sees_the_generator_blocked() -> None:
    lag = LoopLag()
    probe = asyncio.create_task(lag.run())
    await asyncio.sleep(0.05)
    busy_until = time.monotonic() + 0.2
    while time.monotonic() < busy_until:  # the loop is busy: every answer in flight waits
        pass
    await asyncio.sleep(0.05)
    probe.cancel()
    figures = lag.figures()
    assert figures["max"] is not None
    assert figures["max"] >= 150
    assert LoopLag().figures() == {"p99": None, "max": None}
