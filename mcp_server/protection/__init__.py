"""The MCP endpoint as an OAuth protected resource, one concern per module.

A request to /mcp (or the legacy /sse and its message endpoint) passes, outermost first:
`origin.OriginGuard` (Host/Origin check, CORS) -> `middleware.BearerAuth` (one validator call,
401/400/429/503; `unknown_tokens` bounds what junk tokens cost per client address; `dpop` the
DPoP scheme, RFC 9449) ->
`scopes.ScopeCheck` (403 insufficient_scope per JSON-RPC method) -> `enrichment.EnrichPrincipal`
(the caller's tenant record, cached; 503 when it cannot be looked up) -> the SDK.
`metadata` serves RFC 9728 protected resource metadata, open to everyone.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp

from mcp_server.protection.dpop import ProofOfPossession
from mcp_server.protection.enrichment import EnrichPrincipal, TenantCache
from mcp_server.protection.metadata import resource_metadata_url
from mcp_server.protection.middleware import BearerAuth
from mcp_server.protection.origin import OriginGuard, OriginPolicy
from mcp_server.protection.scopes import ExtraScopes, ScopeCheck, ScopePolicy, ToolScopeLookup
from mcp_server.protection.unknown_tokens import UnknownTokenLimit
from shared.dpop import ProofVerifier
from shared.scopes import CATALOGUE
from shared.settings import Settings
from shared.token_exchange import TokenExchanger
from shared.validation import TokenValidator


def endpoint_guard(
    settings: Settings,
    *,
    validator: TokenValidator | None,
    api_key_validator: TokenValidator | None,
    tool_scopes: ToolScopeLookup,
    tenants: TenantCache | None = None,
    extra_scopes: ExtraScopes | None = None,
    exchanger: TokenExchanger | None = None,
    proofs: ProofVerifier | None = None,
) -> Callable[[ASGIApp], ASGIApp]:
    """Wrap an MCP endpoint in the whole chain; without a validator (AUTH_MODE=none) only the
    Host/Origin guard and CORS remain. Without `tenants` no request is enriched (tools then see
    no tenant: the app always passes one). With `exchanger` (token exchange on), tools get a
    `Delegation` of each caller's OAuth token (`delegation.py`); without `proofs` no DPoP scheme
    (the app always passes one)."""
    policy = OriginPolicy.from_settings(settings)
    metadata_url = resource_metadata_url(settings)
    scope_policy = ScopePolicy(tool_scopes)
    unknown_tokens = UnknownTokenLimit.from_settings(settings)  # one for /mcp and /sse alike
    dpop = None
    if proofs is not None:
        dpop = ProofOfPossession(
            proofs,
            public_base_url=settings.mcp_base_url,
            resource_metadata_url=metadata_url,
            challenge_scopes=CATALOGUE.baseline,
            required=settings.dpop_required,
        )

    def guard(app: ASGIApp) -> ASGIApp:
        if validator is not None:
            if tenants is not None:
                app = EnrichPrincipal(app, tenants)
            app = ScopeCheck(
                app, policy=scope_policy, resource_metadata_url=metadata_url, extra_scopes=extra_scopes
            )
            app = BearerAuth(
                app,
                validator=validator,
                api_key_validator=api_key_validator,
                resource=settings.mcp_resource_url,
                audiences=settings.token_audiences,
                api_key_header=settings.api_key_header,
                resource_metadata_url=metadata_url,
                challenge_scopes=CATALOGUE.baseline,
                unknown_tokens=unknown_tokens,
                exchanger=exchanger,
                dpop=dpop,
            )
        return OriginGuard(app, policy)

    return guard
