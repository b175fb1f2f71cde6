"""Everything the server offers. Adding a tool is one decorated function in a module here."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from shared.settings import Settings
from shared.storage import Store


def register_features(server: MCPServer, settings: Settings, store: Store) -> None:
    from mcp_server.features import basics, notes

    basics.register(server)
    notes.register(server, store)
    _register_protocol_fixtures(server)


def _register_protocol_fixtures(server: MCPServer) -> None:
    """Every protocol feature, under the fixture names the official MCP conformance suite calls."""
    from mcp_server.features import (
        completions,
        interactive,
        list_changes,
        prompts,
        resources,
        session_logging,
        tools,
    )

    tools.register(server, session_logging.register(server))
    interactive.register(server)
    list_changes.register(server)
    resources.register(server)
    prompts.register(server)
    completions.register(server)
