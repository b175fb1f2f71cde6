"""Which module may import which, checked on the source (every import, also inside functions).

The directions that keep the code easy to change (README, "Layout"): `shared` imports neither
server; `auth_server` never imports `mcp_server`; `mcp_server` imports `auth_server` in its
composition root only; only `mcp_server/sdk_access.py` reaches past the MCP SDK's public surface.
Inside the authorization server, endpoints depend on services, never the
other way: only the composition (`app.py`) and the HTTP side itself (`endpoints/`, the admin API)
import an endpoint module.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mcp.server.mcpserver import MCPServer

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


def sdk_private_reaches(path: Path, private: set[str]) -> list[str]:
    """What `path` touches of the SDK's private parts: MCPServer's private attributes (by name)
    and modules whose dotted path has a `_` part (`mcp.server._otel`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append(node.attr)
        modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        found.extend(
            name
            for name in modules
            if name.split(".")[0] == "mcp" and any(part.startswith("_") for part in name.split("."))
        )
    return found


def test_only_sdk_access_reaches_past_the_public_surface_of_the_mcp_sdk() -> None:
    private = {
        name for name in vars(MCPServer("probe")) if name.startswith("_") and not name.startswith("__")
    }
    assert "_tool_manager" in private  # the probe sees what the SDK keeps private
    reaches = {
        str(path.relative_to(ROOT)): sdk_private_reaches(path, private)
        for package in ("mcp_server", "auth_server", "shared")
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {module for module, found in reaches.items() if found} == {"mcp_server/sdk_access.py"}
    assert {"_tool_manager", "_lowlevel_server", "mcp.server._otel"} <= set(
        reaches["mcp_server/sdk_access.py"]
    )


def test_the_check_sees_imports_inside_functions() -> None:
    """`__main__` imports the app lazily (inside `main`): the walk must find it."""
    assert "auth_server.app" in imports_of(ROOT / "auth_server" / "__main__.py")
