"""Everything the server offers. Adding a tool is one decorated function in a module here."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from shared.settings import Settings
from shared.storage import Store


def register_features(server: MCPServer, settings: Settings, store: Store) -> None:
    from mcp_server.features import basics, notes

    basics.register(server)
    notes.register(server, store)
