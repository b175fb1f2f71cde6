"""`grant_type=client_credentials` (OAuth 2.1 section 4.2): a machine client acting for itself.

Only confidential clients that registered the grant may use it (`unauthorized_client`
otherwise): a public client proves nothing, so a token "for itself" would be a token for
anyone. The subject is the client_id, there is no refresh token (the client can always ask
again) and no grant record, since there is no user consent to end. The audience is the
requested resource or the default MCP resource, never unrestricted.
"""

from __future__ import annotations

from auth_server.client_auth import AuthenticatedClient
from auth_server.endpoints.forms import Form
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext, requested_scopes
from auth_server.resources import default_resource
from auth_server.tokens import IssuedTokens
from shared import scopes as scope_model


async def exchange(ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str) -> IssuedTokens:
    client = caller.client
    if not caller.proved_identity:
        raise OAuthError("unauthorized_client", "client_credentials is for confidential clients only")
    resource = form.get("resource") or default_resource(ctx.settings)
    if resource not in ctx.resources:
        raise OAuthError("invalid_target", "no tokens are issued for that resource")
    registered = scope_model.parse(client.scope)
    allowed = registered or scope_model.SUPPORTED_SCOPES
    if form.get("scope") is None:
        scopes = registered or scope_model.BASELINE_SCOPES
    else:
        scopes = requested_scopes(form.get("scope"), allowed)
    issued = await ctx.tokens.issue(
        client_id=client.client_id,
        subject=client.client_id,
        scopes=scopes,
        resource=resource,
        grant_id=None,
    )
    ctx.audit.record(
        "token_issued",
        ip=ip,
        client_id=client.client_id,
        subject=client.client_id,
        grant_type="client_credentials",
        scope=issued.scope,
        resource=resource,
        jti=issued.jti,
    )
    return issued
