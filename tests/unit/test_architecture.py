"""Layering rules that keep the code base honest, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("control_plane", "billing", "portal")
# The one SQLAlchemy name a controller or portal page may mention: the type of the ``db``
# session the request injects. Queries live in services and repositories.
ALLOWED_IN_CONTROLLERS = {("sqlalchemy.ext.asyncio", "AsyncSession")}


def sources(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def controller_and_portal_modules() -> list[Path]:
    controllers = [
        p
        for p in sources("control_plane")
        if p.name == "controllers.py" or p.name.endswith("_controllers.py")
    ]
    return controllers + sources("portal")


def sqlalchemy_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every SQLAlchemy import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, "*") for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [(node.module or "", a.name) for a in node.names]
    return found


class TestImportContracts:
    def test_import_linter_contracts_hold(self) -> None:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

        assert result.returncode == 0, result.stdout + result.stderr


class TestControllers:
    def test_there_are_controllers_to_check(self) -> None:
        names = {p.relative_to(REPO).as_posix() for p in controller_and_portal_modules()}
        assert "control_plane/identity/controllers.py" in names
        assert "control_plane/inventory/controllers.py" in names

    @pytest.mark.parametrize(
        "path",
        controller_and_portal_modules(),
        ids=lambda p: p.relative_to(REPO).as_posix(),
    )
    def test_controllers_and_portal_build_no_queries(self, path: Path) -> None:
        extra = [imp for imp in sqlalchemy_imports(path) if imp not in ALLOWED_IN_CONTROLLERS]

        assert extra == [], f"{path.name} imports {extra}; move the query into a service"


class TestTenantScope:
    def test_only_the_authorization_layer_builds_a_tenant_scope(self) -> None:
        authz = REPO / "control_plane" / "identity" / "authz.py"
        builders = []
        for path in sources(*PACKAGES):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name | ast.Attribute)
                    and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
                    == "TenantScope"
                ):
                    builders.append(f"{path.relative_to(REPO)}:{node.lineno}")

        assert [b for b in builders if not b.startswith(str(authz.relative_to(REPO)))] == []
        assert builders, "authz.py is expected to build the scope"

    def test_a_scope_cannot_be_forged_outside_authz(self) -> None:
        from control_plane.identity.authz import TenantScope
        from control_plane.identity.principal import Principal
        from control_plane.identity.roles import Permission

        principal = Principal(kind="user", id="usr_x", display="x", memberships={})

        with pytest.raises(TypeError):
            TenantScope(object(), principal, Permission.ORG_READ)
