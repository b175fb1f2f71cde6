"""The one way a tool learns who is calling.

`BearerAuth` put the Principal on the HTTP request that carried the message; the SDK hands
that request to the handler as `ctx.request_context.request`. On stdio, with AUTH_MODE=none, or
outside a request there is no principal and the caller is anonymous.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from mcp_server.protection.middleware import PRINCIPAL_STATE_KEY
from shared.validation import Principal

ANONYMOUS = "anonymous"


def current_principal(ctx: Context[Any, Any]) -> Principal | None:
    try:
        request = ctx.request_context.request
    except ValueError:  # no request context: called outside a request
        return None
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    state = scope.get("state")
    principal = state.get(PRINCIPAL_STATE_KEY) if isinstance(state, dict) else None
    return principal if isinstance(principal, Principal) else None
