"""`grant_type=client_credentials` (OAuth 2.1 section 4.2): a machine client acting for itself.

A token with no user behind it is the operator's decision: only clients configured in
AUTH_CLIENTS with this grant and an explicit `scope` get one (`Client.may_use_grant`; a client
that registered itself or publishes a metadata document is `unauthorized_client`, and so is a
resource server's introspection credential). The token never carries more than that `scope`:
it carries the requested scopes that lie within it (RFC 6749 section 3.3; the answer's `scope`
says which), all of it without a `scope` parameter, and a request of nothing within it is
`invalid_scope`. Granting the overlap rather than refusing is what lets the MCP SDK's
`ClientCredentialsOAuthProvider` work: it asks for the scope the MCP server's challenge names,
whatever the client was configured with.

The subject is `client:<client_id>` (`Client.machine_subject`), a form no user's subject can
take, so a machine client never shares a user's notes or sessions whatever its client_id. There
is no refresh token (the client can always ask again) and no grant record, since there is no
user consent to end. The audience is the requested resource or the default MCP resource, never
unrestricted.
"""

from __future__ import annotations

from auth_server.clients.authentication import AuthenticatedClient
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext, granted_within
from auth_server.grants.index import GrantIndex
from auth_server.params import Form
from auth_server.resources import default_resource
from auth_server.tokens import IssuedTokens
from shared import scopes as scope_model


async def exchange(ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str) -> IssuedTokens:
    client = caller.client
    configured = scope_model.parse(client.scope)
    if not caller.proved_identity or not configured:
        raise OAuthError("unauthorized_client", "client_credentials is for configured machine clients only")
    resource = form.get("resource") or default_resource(ctx.settings)
    if resource not in ctx.resources:
        raise OAuthError("invalid_target", "no tokens are issued for that resource")
    scopes = granted_within(form.get("scope"), configured)
    issued = await ctx.tokens.issue(
        client_id=client.client_id,
        subject=client.machine_subject,
        scopes=scopes,
        resource=resource,
        grant_id=None,
        cnf_jkt=ctx.dpop.jkt if ctx.dpop is not None else None,
    )
    for key in issued.store_keys:
        await GrantIndex(ctx.store).add_machine_token(client.client_id, key, issued.expires_in)
    # Disabling writes its flag, then ends the indexed tokens: one of the two sees the other.
    if await ctx.disabled.is_disabled(client.client_id):
        await ctx.store.delete(*issued.store_keys)
        raise OAuthError("unauthorized_client", "the client was disabled while this request was in flight")
    ctx.audit.record(
        "token_issued",
        ip=ip,
        client_id=client.client_id,
        subject=client.machine_subject,
        grant_type="client_credentials",
        scope=issued.scope,
        resource=resource,
        jti=issued.jti,
    )
    return issued
