"""Builds the MCPServer and registers every feature on it.

Transport-agnostic: the same server object serves Streamable HTTP (both protocol revisions),
the legacy HTTP+SSE transport and stdio.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.features import register_features
from shared.settings import Settings
from shared.storage import Store

SERVER_NAME = "mcp-reference-server"
SERVER_VERSION = "0.1.0"


def build_mcp_server(settings: Settings, store: Store) -> MCPServer:
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="MCP Reference Server",
        version=SERVER_VERSION,
        instructions=(
            "A reference MCP server: every protocol feature, plus tools that show OAuth at work "
            "(whoami, per-user notes with scope-gated writes)."
        ),
        log_level=settings.log_level,
    )
    register_features(server, settings, store)
    return server
