"""The one place that reaches past MCPServer's public surface, and why.

Everything else in `mcp_server` uses public SDK APIs only. MCPServer (mcp 2.3) has no public
way to do the two things below; each function names the private attribute it touches, so an
SDK upgrade that adds a public API (or renames the attribute) is a one-file change.
"""

from __future__ import annotations

from typing import Any

from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import MCPServer


def lowlevel_server(server: MCPServer) -> Server[Any]:
    """The low-level `Server` inside an MCPServer, to register spec methods MCPServer does not serve.

    `logging/setLevel` and `resources/subscribe`/`unsubscribe` (handshake revisions only) have no
    MCPServer decorator, and `Extension` method bindings refuse spec methods; the SDK's own
    guidance (the `MethodBinding` docstring) is `Server.add_request_handler`. MCPServer keeps that
    server in the private `_lowlevel_server` attribute.
    """
    return server._lowlevel_server


def replace_input_schema(server: MCPServer, name: str, input_schema: dict[str, Any]) -> None:
    """Make the registered tool `name` advertise a hand-written JSON Schema as its `inputSchema`.

    MCPServer derives `inputSchema` from the function signature, which cannot express a JSON
    Schema 2020-12 document with `$schema`, `$anchor`, `allOf`/`anyOf` or `if`/`then`/`else`,
    and it has no public setter; registered tools live in the private `_tool_manager`.
    Arguments are still validated against the function signature before the tool runs, so the
    function must accept everything the schema allows and check the rest itself.
    """
    tool = server._tool_manager.get_tool(name)
    if tool is None:
        raise LookupError(f"tool {name!r} is not registered")
    tool.parameters = input_schema
