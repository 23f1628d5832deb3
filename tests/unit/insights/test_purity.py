"""The rules and their test fleet stay pure: plain data in, findings out (stdlib only), so
they are unit-tested and benchmarked without a database."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "control_plane" / "insights"
PURE = ("features.py", "findings.py", "rules.py", "fleetgen.py", "accuracy.py")
IO_MODULES = {"os", "io", "socket", "subprocess", "sqlite3", "shutil", "pathlib", "time"}


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for item in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(item, ast.Import):
            found |= {alias.name for alias in item.names}
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            found.add(item.module)
    return found


class TestPurity:
    @pytest.mark.parametrize("name", PURE)
    def test_imports_only_insights_and_the_standard_library(self, name: str) -> None:
        offenders = []
        for module in imported_modules(PACKAGE / name):
            top = module.split(".")[0]
            if module.startswith("control_plane.insights") or top == "__future__":
                continue
            if top not in sys.stdlib_module_names or top in IO_MODULES:
                offenders.append(module)
        assert offenders == []

    def test_rules_do_not_import_the_test_fleet(self) -> None:
        assert "control_plane.insights.fleetgen" not in imported_modules(PACKAGE / "rules.py")
