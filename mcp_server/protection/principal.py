"""The one way a tool learns who is calling, and for which customer.

`BearerAuth` put the Principal on the HTTP request that carried the message, and
`EnrichPrincipal` its Tenant; the SDK hands that request to the handler as
`ctx.request_context.request` (a tool's `Context`) or `ctx.request` (a low-level handler's
`ServerRequestContext`, e.g. an extension's). On stdio, with AUTH_MODE=none, or outside a request
there is neither: the caller is anonymous.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context

from mcp_server.protection.enrichment import TENANT_STATE_KEY
from mcp_server.protection.middleware import PRINCIPAL_STATE_KEY
from mcp_server.tenants import Tenant
from shared.validation import Principal

ANONYMOUS = "anonymous"

AnyContext = Context[Any, Any] | ServerRequestContext[Any, Any]


def current_principal(ctx: AnyContext) -> Principal | None:
    principal = _request_state(ctx).get(PRINCIPAL_STATE_KEY)
    return principal if isinstance(principal, Principal) else None


def current_tenant(ctx: AnyContext) -> Tenant | None:
    """The caller's tenant record (`mcp_server/tenants.py`), None without a principal."""
    tenant = _request_state(ctx).get(TENANT_STATE_KEY)
    return tenant if isinstance(tenant, Tenant) else None


def _request_state(ctx: AnyContext) -> dict[str, Any]:
    if isinstance(ctx, ServerRequestContext):
        request = ctx.request
    else:
        try:
            request = ctx.request_context.request
        except ValueError:  # no request context: called outside a request
            return {}
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    return state if isinstance(state, dict) else {}
