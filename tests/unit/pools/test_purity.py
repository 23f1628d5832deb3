"""The window math of pools stays pure: the standard library only, no I/O (zoneinfo reads
the time-zone database, which is data, not a side effect the math depends on)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.placement.test_purity import IO_MODULES, imported_modules

SCHEDULE = Path(__file__).resolve().parents[3] / "control_plane" / "pools" / "schedule.py"


def test_the_window_math_imports_only_the_standard_library() -> None:
    import sys

    offenders = [
        module
        for module in imported_modules(SCHEDULE)
        if module.split(".")[0] not in {*sys.stdlib_module_names} - IO_MODULES
    ]
    assert offenders == []
