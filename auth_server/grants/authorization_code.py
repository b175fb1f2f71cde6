"""`grant_type=authorization_code` (OAuth 2.1 section 4.1.3, RFC 7636 section 4.6, RFC 8707).

A code is single-use in the strongest sense: whoever presents it first consumes it (`Store.take`
is atomic), whether or not that request then passes the checks. A code that reached the wrong
hands is therefore dead after one guess, and a client that botched its request simply starts a
new authorization.

Then the redemption must match everything the code was bound to at /authorize: the client, the
PKCE challenge (S256 only), the redirect_uri (required and identical when the authorization
request carried one, OAuth 2.1 section 4.1.3), and the resource if the client names it
(`invalid_target` otherwise), and the DPoP key when /authorize got `dpop_jkt` (RFC 9449
section 10: a proof by that key, else `invalid_grant`). The user and the consented scope come
from the code and are not negotiable here.

Replay (OAuth 2.1 section 4.1.3, RFC 9700 section 4.5.3): for REDEEMED_TTL seconds after a
redemption a marker remembers the code's client, challenge and grant. The marker is written
before the code is taken, so every request that loses a race for the same code finds it, whatever
the interleaving of Store calls (across instances too). A second presentation is
`invalid_grant`; if it also proves possession (same client, correct verifier) the code has
evidently leaked, and everything issued from it is revoked. A replay without that proof is only
refused: otherwise anyone who saw a code in a log could revoke a stranger's session.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from auth_server import crypto
from auth_server.clients.authentication import AuthenticatedClient
from auth_server.dpop import check_bound_key
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext, invalid_grant
from auth_server.grants.grant import GrantRecord
from auth_server.models import AuthorizationCodeRecord
from auth_server.params import Form
from auth_server.tokens import IssuedTokens
from shared.storage import records
from shared.storage.records import code_key, redeemed_code_key

REDEEMED_TTL = 600
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 section 4.1


class RedeemedCode(BaseModel):
    """What a replay needs to prove possession; no credential in it (the challenge is a hash)."""

    client_id: str
    code_challenge: str
    grant_id: str


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    if verifier is None or not challenge or not _VERIFIER.fullmatch(verifier):
        return False
    return crypto.constant_time_equals(crypto.s256_challenge(verifier), challenge)


async def exchange(ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str) -> IssuedTokens:
    code = form.require("code")
    verifier = form.get("code_verifier")
    # Marker first (from a plain read), then the atomic take: a request that loses the take is
    # certain to find the marker its winner (or itself) wrote.
    await _mark_redeemed(ctx, await records.read(ctx.store, code_key(code), AuthorizationCodeRecord), code)
    record = await records.take(ctx.store, code_key(code), AuthorizationCodeRecord)
    if record is None:
        await _on_replay(ctx, caller, code, verifier, ip)
        raise invalid_grant("the authorization code is invalid, expired or already used")
    await _mark_redeemed(ctx, record, code)

    if record.client_id != caller.client_id:
        raise invalid_grant("the authorization code was issued to another client")
    if record.issued_at + ctx.settings.authorization_code_ttl <= ctx.clock():
        raise invalid_grant("the authorization code has expired")
    if verifier is None:
        raise invalid_grant("code_verifier is required (PKCE)")
    if not verifier_matches(verifier, record.code_challenge):
        raise invalid_grant("code_verifier does not match the code_challenge")
    redirect_uri = form.get("redirect_uri")
    if redirect_uri is None and record.redirect_uri_in_request:
        raise invalid_grant("redirect_uri is required: the authorization request carried one")
    if redirect_uri is not None and redirect_uri != record.redirect_uri:
        raise invalid_grant("redirect_uri differs from the authorization request")
    resource = form.get("resource")
    if resource is not None and resource != record.resource:
        raise OAuthError("invalid_target", "resource differs from the one authorized")
    check_bound_key(record.dpop_jkt, ctx.dpop, "the authorization code")

    with_refresh = "refresh_token" in caller.client.grant_types
    ttl = ctx.tokens.refresh_ttl if with_refresh else ctx.settings.access_token_ttl
    grant = GrantRecord(
        grant_id=record.grant_id,
        client_id=record.client_id,
        subject=record.subject,
        scope=" ".join(record.scopes),
        resource=record.resource,
        created_at=int(ctx.clock()),
        authorized_at=record.issued_at,
    )
    return await ctx.issue_in_grant(
        grant,
        scopes=record.scopes,
        refresh_scopes=record.scopes if with_refresh else None,
        ttl=ttl,
        grant_type="authorization_code",
        ip=ip,
        revoked_meanwhile="the authorization code was replayed; its grant is revoked",
    )


async def _mark_redeemed(ctx: GrantContext, record: AuthorizationCodeRecord | None, code: str) -> None:
    """Remember the code's redemption (idempotent: every writer writes the same)."""
    if record is None:
        return
    marker = RedeemedCode(
        client_id=record.client_id, code_challenge=record.code_challenge, grant_id=record.grant_id
    )
    await records.write(ctx.store, redeemed_code_key(code), marker, ttl=REDEEMED_TTL)


async def _on_replay(
    ctx: GrantContext, caller: AuthenticatedClient, code: str, verifier: str | None, ip: str
) -> None:
    redeemed = await records.read(ctx.store, redeemed_code_key(code), RedeemedCode)
    if redeemed is None:
        return  # never issued, or long expired: nothing to learn
    proven = redeemed.client_id == caller.client_id and verifier_matches(verifier, redeemed.code_challenge)
    if not proven:
        ctx.audit.record(
            "code_replay",
            ip=ip,
            client_id=caller.client_id,
            grant_id=redeemed.grant_id,
            reason="replay without the client's proof; grant kept",
        )
        return
    grant = await ctx.grants.get(redeemed.grant_id)
    alive = await ctx.grants.revoke(redeemed.grant_id)
    ctx.audit.record(
        "code_replay",
        ip=ip,
        client_id=caller.client_id,
        subject=grant.subject if grant is not None else None,
        grant_id=redeemed.grant_id,
        reason=f"grant revoked ({alive} live tokens)",
    )
