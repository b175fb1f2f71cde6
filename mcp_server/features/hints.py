"""How a tool describes itself to clients: annotation presets and a docstring-clean `tool` decorator.

The hints tell a client what calling a tool does: whether it only reads (`read_only_hint`), may
destroy something (`destructive_hint`), gives the same effect when repeated (`idempotent_hint`)
and reaches outside this server (`open_world_hint`). Asking the client or its user for input
(elicitation, sampling, roots) is interaction with the caller, not the open world.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

FnT = TypeVar("FnT", bound=Callable[..., Any])

PURE = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
"""Reads nothing changeable and changes nothing: the same call always gives the same answer."""

ASKS_CLIENT = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Changes nothing on the server, but the answer depends on what the client or its user replies."""

CHANGES_SERVER = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Changes what this server offers (additively and reversibly); nothing is lost."""


def tool(server: MCPServer, annotations: ToolAnnotations) -> Callable[[FnT], FnT]:
    """Register a tool whose description is its docstring as one line of text.

    MCPServer sends a docstring verbatim, so a docstring wrapped over several source lines would
    reach clients with the code's line breaks and indentation in the middle of its sentences.
    """

    def register(fn: FnT) -> FnT:
        description = " ".join(inspect.cleandoc(fn.__doc__ or "").split())
        return server.tool(description=description, annotations=annotations)(fn)

    return register
