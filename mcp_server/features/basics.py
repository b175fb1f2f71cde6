"""The tools people try first: echo, add, whoami."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def register(server: MCPServer) -> None:
    @server.tool(annotations=READ_ONLY)
    def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    @server.tool(annotations=READ_ONLY)
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b
