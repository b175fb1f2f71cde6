"""`grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): delegation, never
passthrough.

A tool that needs another API for the signed-in user must not forward the user's MCP token (MCP
security best practices, "Token Passthrough": that token's audience is the MCP server, and an API
that accepted it would let anyone holding it in). The MCP server exchanges it here instead, for a
token made for that one API:

* the caller is the MCP server's own delegation credential, and nobody else: in internal mode the
  MCP server calls `exchange_for` in process; in external mode it authenticates at /token as
  TOKEN_EXCHANGE_CLIENT_ID (a configured confidential client that may use this grant and no other:
  `Client.may_use_grant`). A client that registered itself, a metadata document client, a
  machine client and the introspection credential are `unauthorized_client`;
* `subject_token` is an access token this server issued and that is live now, for a resource it
  protects (`subject_token_type` access_token; refresh tokens, ID tokens and codes are not
  subjects). A token that was itself exchanged is refused: delegation does not chain;
* the target is one `audience` (or `resource`) from TOKEN_EXCHANGE_AUDIENCES (`invalid_target`
  otherwise): an API the operator named, never the MCP server itself;
* `scope` is required and within the subject token's scope (`invalid_scope`): the exchanged token
  is never broader than the user's, and names only what the call needs;
* no `actor_token` (the actor is the authenticated caller) and no refresh token.

The exchanged token is an RFC 9068 JWT (whatever TOKEN_FORMAT says: the downstream API verifies
it against our JWKS) with `sub` the user, `aud` the API, the requested `scope`, `client_id` the
delegation credential and `act: {"sub": <the MCP server's resource URI>}` (RFC 8693 section
4.1), living TOKEN_EXCHANGE_TTL seconds and never past the subject token. It joins the subject
token's grant, so whatever ends the user's grant (revocation, the account page, an
administrator) ends it too; a machine client's exchanged token is indexed with the client's own
tokens. Every exchange is audited (`token_issued`, grant type token-exchange, naming the actor
and the audience).
"""

from __future__ import annotations

from auth_server.clients.authentication import AuthenticatedClient
from auth_server.errors import OAuthError, quoted
from auth_server.grants.context import GrantContext, invalid_grant
from auth_server.grants.index import GrantIndex
from auth_server.params import Form
from auth_server.tokens import AccessTokenRecord, IssuedTokens
from shared import scopes as scope_model
from shared.oauth import TOKEN_EXCHANGE_GRANT
from shared.token_exchange import ACCESS_TOKEN_TYPE
from shared.validation import TokenRejected

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - a URN


async def exchange(ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str) -> IssuedTokens:
    """The /token handler: the delegation credential authenticated; the rest is `exchange_for`."""
    if not caller.proved_identity:
        raise OAuthError("unauthorized_client", "token exchange is for a configured delegation credential")
    if form.get("actor_token") is not None or form.get("actor_token_type") is not None:
        raise OAuthError(
            "invalid_request", "actor_token is not supported: the authenticated client is the actor"
        )
    requested_type = form.get("requested_token_type")
    if requested_type not in (None, ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE):
        raise OAuthError(
            "invalid_request", f"requested_token_type {quoted(requested_type or '')} is not issued"
        )
    audience, resource = form.get("audience"), form.get("resource")
    if audience is not None and resource is not None and audience != resource:
        raise OAuthError("invalid_target", "name the target once, as audience or resource")
    return await exchange_for(
        ctx,
        actor=caller.client_id,
        subject_token=form.require("subject_token"),
        subject_token_type=form.require("subject_token_type"),
        audience=audience or resource,
        scope=form.get("scope"),
        ip=ip,
    )


async def exchange_for(
    ctx: GrantContext,
    *,
    actor: str,
    subject_token: str,
    subject_token_type: str,
    audience: str | None,
    scope: str | None,
    ip: str | None,
) -> IssuedTokens:
    """Exchange `subject_token` for a token for `audience` with `scope`, `actor` acting (the
    rules are the module docstring's); OAuthError when refused."""
    if subject_token_type != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "subject_token_type must be an access token's")
    allowed = ctx.settings.token_exchange_audiences
    if audience is None or audience not in allowed:
        raise OAuthError("invalid_target", "tokens are exchanged only for the APIs the operator listed")
    try:
        record, _ = await ctx.tokens.find_access(subject_token)
    except TokenRejected:
        raise invalid_grant("the subject_token is not an active access token of this server") from None
    if record.act is not None:
        raise invalid_grant("an exchanged token cannot be exchanged again")
    served = [resource for resource in record.aud if resource in ctx.resources]
    if not served:
        raise invalid_grant("the subject_token was not issued for a resource this server protects")
    scopes = _narrowed(scope, record)
    now = int(ctx.clock())
    ttl = min(ctx.settings.token_exchange_ttl, record.exp - now)
    if ttl <= 0:
        raise invalid_grant("the subject_token has expired")
    issued = await ctx.tokens.issue_delegated(
        subject=record.sub,
        client_id=actor,
        scopes=scopes,
        audience=audience,
        act={"sub": served[0]},
        ttl=ttl,
        grant_id=record.grant_id,
    )
    if record.grant_id is not None:
        # Joins the user's grant: revoking it ends this token too (a revocation that already
        # happened deletes it again here).
        if not await ctx.grants.attach(record.grant_id, issued.store_keys, ttl):
            raise invalid_grant("the subject_token's grant was revoked")
    else:
        for key in issued.store_keys:
            await GrantIndex(ctx.store).add_machine_token(record.client_id, key, ttl)
    ctx.audit.record(
        "token_issued",
        ip=ip,
        client_id=actor,
        subject=record.sub,
        grant_id=record.grant_id,
        grant_type=TOKEN_EXCHANGE_GRANT,
        scope=issued.scope,
        resource=audience,
        jti=issued.jti,
        reason=f"exchanged for the user's token {record.jti} of client {record.client_id[:100]}",
    )
    return IssuedTokens(
        issued.access_token,
        issued.expires_in,
        issued.scope,
        issued.jti,
        None,
        issued.store_keys,
        issued_token_type=ACCESS_TOKEN_TYPE,
    )


def _narrowed(requested: str | None, record: AccessTokenRecord) -> tuple[str, ...]:
    wanted = scope_model.parse(requested)
    if not wanted:
        raise OAuthError("invalid_request", "name the scope the downstream call needs (scope)")
    within = scope_model.CATALOGUE.expand(scope_model.parse(record.scope))
    outside = [scope for scope in wanted if scope not in within]
    if outside:
        raise OAuthError("invalid_scope", f"scope exceeds the subject token's: {quoted(' '.join(outside))}")
    return wanted
