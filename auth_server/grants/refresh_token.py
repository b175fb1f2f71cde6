"""`grant_type=refresh_token` with rotation and reuse detection (OAuth 2.1 section 4.3,
RFC 9700 section 4.14.2).

Every refresh consumes the presented refresh token and returns a new one with the grant's full
scope and a fresh REFRESH_TOKEN_TTL (so the lifetime is an idle timeout). The consumed token
leaves a marker for the rest of its would-be lifetime; presenting it again is reuse: either an
attacker or the legitimate client is holding a stolen copy, the AS cannot tell which, so the
whole grant is revoked and the user must authorize again.

Checks happen before the token is consumed, so a request that merely asks for too much scope
(`invalid_scope`), another resource (`invalid_target`) or comes from another client
(`invalid_grant`) leaves the token usable by its owner.

Race policy: no grace period. Two concurrent refreshes with the same token are indistinguishable
from theft: one wins, the other finds the reuse marker and the grant ends. Clients must
serialise refreshes (the MCP SDKs do). The marker is written *before* the token is consumed, so
every loser of the race finds it whatever the interleaving of Store calls (across instances
too): N concurrent refreshes always end the grant, and the winner's fresh tokens die with it (the
winner gets `invalid_grant` "revoked while this request was in flight" if the grant ended
before its tokens joined it, else its 200 carries tokens that no longer work).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from auth_server import crypto
from auth_server.client_auth import AuthenticatedClient
from auth_server.endpoints.forms import Form
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext, invalid_grant, requested_scopes
from auth_server.grants.grant import GrantRecord
from auth_server.tokens import IssuedTokens, RefreshTokenRecord, refresh_key
from shared import scopes as scope_model

ROTATED_PREFIX = "auth:refresh-rotated:"
_INVALID = "the refresh token is invalid, expired or revoked"
REVOKED_IN_FLIGHT = "the grant was revoked while this request was in flight"


class RotatedRefreshToken(BaseModel):
    client_id: str
    grant_id: str


async def exchange(ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str) -> IssuedTokens:
    token = form.require("refresh_token")
    digest = crypto.digest(token)
    record = await ctx.tokens.find_refresh(token)
    if record is None:
        await _on_reuse(ctx, caller, digest, ip)
        raise invalid_grant(_INVALID)
    if record.client_id != caller.client_id:
        raise invalid_grant("the refresh token was issued to another client")
    resource = form.get("resource")
    if resource is not None and resource != record.resource:
        raise OAuthError("invalid_target", "a refresh cannot change the resource")
    granted = scope_model.parse(record.scope)
    scopes = requested_scopes(form.get("scope"), granted)

    # Marker first, then consume: whoever loses the take below is certain to find the marker.
    remaining = max(1, record.exp - int(ctx.clock()))
    marker = RotatedRefreshToken(client_id=record.client_id, grant_id=record.grant_id)
    await ctx.store.set(ROTATED_PREFIX + digest, marker.model_dump_json(), ttl=remaining)
    if await ctx.store.take(refresh_key(token)) is None:  # consumed or revoked since we read it
        await _on_reuse(ctx, caller, digest, ip)
        raise invalid_grant(_INVALID)

    ttl = ctx.tokens.refresh_ttl
    return await ctx.issue_in_grant(
        await ctx.grants.get(record.grant_id) or _grant_from(record),
        scopes=scopes,
        refresh_scopes=granted,
        ttl=ttl,
        grant_type="refresh_token",
        ip=ip,
        revoked_meanwhile=REVOKED_IN_FLIGHT,
    )


def _grant_from(record: RefreshTokenRecord) -> GrantRecord:
    return GrantRecord(
        grant_id=record.grant_id,
        client_id=record.client_id,
        subject=record.sub,
        scope=record.scope,
        resource=record.resource,
        created_at=record.iat,
    )


async def _on_reuse(ctx: GrantContext, caller: AuthenticatedClient, digest: str, ip: str) -> None:
    """A rotated token came back: end its grant, unless another client is presenting it (that
    client cannot be its owner, so it learns nothing and changes nothing)."""
    raw = await ctx.store.get(ROTATED_PREFIX + digest)
    if raw is None:
        return
    try:
        rotated = RotatedRefreshToken.model_validate_json(raw)
    except ValidationError:
        return
    if rotated.client_id != caller.client_id:
        return
    grant = await ctx.grants.get(rotated.grant_id)
    alive = await ctx.grants.revoke(rotated.grant_id)
    ctx.audit.record(
        "refresh_reuse",
        ip=ip,
        client_id=caller.client_id,
        subject=grant.subject if grant is not None else None,
        grant_id=rotated.grant_id,
        reason=f"grant revoked ({alive} live tokens)",
    )
