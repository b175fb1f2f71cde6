"""The protocol showcase: every MCP feature, under the names the official conformance suite calls.

Tools of every result kind (`tools`), tools that ask the client for input on both revisions
(`interactive`, built on `mcp_server.client_input`), prompts, resources, completions, list-changed
notifications (`list_changes`), `logging/setLevel` (`session_logging`) and the tasks extension's
fixtures (`tasks`); `media` builds the sample PNG and WAV. None of it is the app: it is served
with SHOWCASE=true (the default, so `make dev-*`, Inspector and the conformance runs see it)
and a fork turns it off with SHOWCASE=false, or for good by changing that setting's default in
shared/settings.py.
Its tools are written with the same kit as the app's (`mcp_server.features.kit`).
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_server.features.kit import Tools
from mcp_server.showcase import (
    completions,
    interactive,
    list_changes,
    prompts,
    resources,
    session_logging,
    tasks,
)
from mcp_server.showcase import tools as result_tools


def register_showcase(server: MCPServer, tools: Tools) -> None:
    result_tools.register(tools, session_logging.register(server))
    interactive.register(tools)
    tasks.register(tools)
    list_changes.register(server, tools)
    resources.register(server)
    prompts.register(server)
    completions.register(server)
