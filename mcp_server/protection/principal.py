"""The one way a tool learns who is calling, and for which customer.

`BearerAuth` put the Principal on the HTTP request that carried the message, and
`EnrichPrincipal` its Tenant; the SDK hands that request to the handler as
`ctx.request_context.request` (a tool's `Context`) or `ctx.request` (a low-level handler's
`ServerRequestContext`, e.g. an extension's). With token exchange on, it also put a `Delegation`
there: the caller's token, exchangeable for a downstream API's and never readable. On stdio, with
AUTH_MODE=none, or outside a request there is none of them: the caller is anonymous.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context

from mcp_server.protection.delegation import DELEGATION_STATE_KEY, Delegation
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


def current_delegation(ctx: AnyContext) -> Delegation | None:
    """What lets a tool get a downstream API token for the caller (`delegation.py`); None
    without token exchange (TOKEN_EXCHANGE_AUDIENCES), for an API key, or without a caller."""
    delegation = _request_state(ctx).get(DELEGATION_STATE_KEY)
    return delegation if isinstance(delegation, Delegation) else None


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
