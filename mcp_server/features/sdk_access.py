"""The one place that reaches past MCPServer's public surface, and why.

Everything else in `mcp_server` uses public SDK APIs only. MCPServer (mcp 2.3) has no public
way to do the two things below; each function names the private attribute it touches, so an
SDK upgrade that adds a public API (or renames the attribute) is a one-file change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations


def lowlevel_server(server: MCPServer) -> Server[Any]:
    """The low-level `Server` inside an MCPServer, to register spec methods MCPServer does not serve.

    `logging/setLevel` and `resources/subscribe`/`unsubscribe` (handshake revisions only) have no
    MCPServer decorator, and `Extension` method bindings refuse spec methods; the SDK's own
    guidance (the `MethodBinding` docstring) is `Server.add_request_handler`. MCPServer keeps that
    server in the private `_lowlevel_server` attribute.
    """
    return server._lowlevel_server


def add_tool_with_input_schema(
    server: MCPServer,
    fn: Callable[..., Any],
    *,
    name: str,
    description: str,
    annotations: ToolAnnotations,
    input_schema: dict[str, Any],
) -> None:
    """Register `fn` as a tool that advertises a hand-written JSON Schema as its `inputSchema`.

    MCPServer derives `inputSchema` from the function signature, which cannot express a JSON
    Schema 2020-12 document with `$schema`, `$anchor`, `allOf`/`anyOf` or `if`/`then`/`else`,
    and it has no public setter; the registered tool lives in the private `_tool_manager`.
    Arguments are still validated against the function signature before `fn` runs, so `fn`
    must accept everything the schema allows and check the rest itself.
    """
    server.add_tool(fn, name=name, description=description, annotations=annotations)
    tool = server._tool_manager.get_tool(name)
    if tool is None:  # pragma: no cover - add_tool just registered it
        raise RuntimeError(f"tool {name!r} was not registered")
    tool.parameters = input_schema
