"""The one place that reaches past MCPServer's public surface, and why.

Everything else in `mcp_server` uses public SDK APIs only. MCPServer (mcp 2.3) has no public
way to do the things below; each function names the private attribute it touches, so an
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


def drop_sdk_tracing(server: MCPServer) -> None:
    """Take the SDK's own OpenTelemetry middleware out of `server`'s message chain.

    MCPServer always installs `OpenTelemetryMiddleware` (in the private `mcp.server._otel`) at
    the head of its public `middleware` list. Without a tracer provider it records nothing, yet
    every message still pays for extracting `_meta` and opening a no-op span (5-12% of an
    in-process tools/call, `scripts/bench/tracing.py`). With tracing off the app removes it, so
    tracing off costs nothing at all; with tracing on it stays: its spans are the MCP ones.
    """
    from mcp.server._otel import OpenTelemetryMiddleware

    server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]


def tool_reaches_client(server: MCPServer, name: str) -> bool | None:
    """Whether the registered tool `name` can send anything to the client before its result (None:
    no such tool): it receives the request's Context (log, progress, sampling, elicitation...), or
    has parameters the SDK fills by asking the client (`Resolve(...)`: sampling, elicitation).

    A tool that can do neither is what lets a 2025-11-25 call of it be answered with one JSON body
    (`mcp_server/responses.py`). MCPServer records both on the tool (`Tool.context_kwarg`,
    `Tool.resolved_params`) in its private `_tool_manager`.
    """
    tool = server._tool_manager.get_tool(name)
    if tool is None:
        return None
    return tool.context_kwarg is not None or bool(tool.resolved_params)
