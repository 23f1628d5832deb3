"""Placement stays pure: plain data in, a decision out, so it can be property-tested and
benchmarked without a database (the import-linter contract covers other domains; this
also keeps third-party and I/O modules out)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "control_plane" / "placement"
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
    def test_placement_imports_only_itself_and_the_standard_library(self) -> None:
        offenders = []
        for path in sorted(PACKAGE.rglob("*.py")):
            for module in imported_modules(path):
                top = module.split(".")[0]
                if module.startswith("control_plane.placement") or top == "__future__":
                    continue
                if top not in sys.stdlib_module_names or top in IO_MODULES:
                    offenders.append(f"{path.name}: {module}")
        assert offenders == []
