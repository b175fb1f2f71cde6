"""Which module may import which, checked on the source (every import, also inside functions).

The directions that keep the code easy to change (README, "Layout"): `shared` imports neither
server; `auth_server` never imports `mcp_server`; `mcp_server` imports `auth_server` in its
composition root only. Inside the authorization server, endpoints depend on services, never the
other way: only the composition (`app.py`) and the HTTP side itself (`endpoints/`, the admin API)
import an endpoint module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, as dotted names (relative imports are not used here)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(package: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(ROOT)): imports_of(path)
        for path in sorted((ROOT / package).rglob("*.py"))
        if ".venv" not in path.parts
    }


def importers(package: str, target: str) -> list[str]:
    return [
        module
        for module, names in sources(package).items()
        if any(name == target or name.startswith(target + ".") for name in names)
    ]


def test_shared_imports_neither_server() -> None:
    assert importers("shared", "auth_server") == []
    assert importers("shared", "mcp_server") == []


def test_the_authorization_server_never_imports_the_mcp_server() -> None:
    assert importers("auth_server", "mcp_server") == []


def test_the_mcp_server_imports_the_authorization_server_in_its_composition_root_only() -> None:
    assert importers("mcp_server", "auth_server") == ["mcp_server/app.py"]


def test_no_service_of_the_authorization_server_imports_an_endpoint() -> None:
    http_side = {"auth_server/app.py", "auth_server/__main__.py", "auth_server/admin/api.py"}
    offenders = [
        module
        for module in [
            *importers("auth_server", "auth_server.endpoints"),
            *importers("auth_server", "auth_server.app"),
        ]
        if module not in http_side and not module.startswith("auth_server/endpoints/")
    ]
    assert offenders == [], "services must not depend on endpoints (move the shared piece down)"


def test_the_check_sees_imports_inside_functions() -> None:
    """`__main__` imports the app lazily (inside `main`): the walk must find it."""
    assert "auth_server.app" in imports_of(ROOT / "auth_server" / "__main__.py")
