"""The garbage collector in a server process.

Python's full (generation 2) collection walks every tracked object. A replica holds about
100,000 of them from start-up alone (modules, SQLAlchemy's mappers and compiled-statement
cache, the app's routes and templates), 220,000-290,000 under load, and on this
project's 2 vCPU VMs a full collection then paused the event loop for 100-200 ms
(measured with ``gc.callbacks`` during ``bench.load``): every request in flight waited,
which was the API's p99. Objects that live as long as the process are moved to the
permanent generation once start-up is done (``gc.freeze``, as large Python services do),
so a full collection walks only what was made since.
"""

from __future__ import annotations

import gc

import structlog

__all__ = ["freeze_startup_heap"]

log = structlog.get_logger("control_plane.heap")


def freeze_startup_heap() -> None:
    """Collect start-up's garbage, then exempt what is left from later collections
    (a Litestar ``on_startup`` hook of the server entry point)."""
    gc.collect()
    gc.freeze()
    log.info("start-up heap frozen", objects=gc.get_freeze_count())
