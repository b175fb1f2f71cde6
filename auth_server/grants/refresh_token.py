"""`grant_type=refresh_token`: rotation, reuse detection, and a grace period for retries
(OAuth 2.1 section 4.3, RFC 9700 sections 2.2.2 and 4.14.2).

Rotation. Every refresh consumes the presented refresh token and returns a new one with the grant's
full scope and a fresh REFRESH_TOKEN_TTL (so the lifetime is an idle timeout). Checks that leave
the token usable come first: another client presenting it (`invalid_grant`, worded as for an
unknown token, so a refresh is no oracle for whether a stolen token is live), a broader scope
(`invalid_scope`), another resource (`invalid_target`), a public client's DPoP-bound token without
a proof by its key (`invalid_grant`, RFC 9449 section 5; `auth_server/dpop.py`).

Reuse. A consumed token leaves a marker (`auth:refresh-rotated:{digest}`) for the rest of its
would-be lifetime, naming the one rotation that consumed it. Its own client presenting it again
after the grace period is reuse: an attacker or the legitimate client holds a stolen copy, the AS
cannot tell which, so the whole grant is revoked and the user must authorize again. Another client
presenting it learns nothing and changes nothing.

Grace period (REFRESH_TOKEN_GRACE_PERIOD seconds, 30 by default, 0 to turn it off). Real clients
refresh concurrently (two requests notice the expiry at once) and retry when a response is lost;
without a grace period either one ends the grant. Within the period after a token's first
presentation, its own client presenting it again gets the *same* tokens that rotation issued, not
new ones: concurrent refreshes all end up holding one working pair, and a retry gets what the lost
response carried. Nothing is stored to make this possible but a salt: the rotation's tokens are
HMACs of the presented token and a random salt (`crypto.derived_credential`), and the salt and the
rotation's fixed claims are kept for the period under `auth:refresh-retry:{digest}`. Only a holder
of the presented token can get the tokens again; a copy of the Store cannot.

The trade-off (RFC 9700 section 4.14.2 counts on the second presentation of a rotated token to
reveal a theft): for those seconds a thief who presents a stolen token right after its owner gets
the owner's new tokens instead of ending the grant. It gains no chain of its own (it holds the very
tokens the owner holds), the next rotation by either one makes the other's copy a rotated token,
and presenting that after the period ends the grant as before. A retry is also refused as reuse
once the tokens it would return have themselves been rotated (a stale duplicate).

Atomicity, across instances and on a Redis Cluster (one key per Store operation):
1. a presentation that finds the token proposes a rotation (salt, jti, time, scope); `SET NX` on
   the retry record makes the first proposal *the* rotation of this token for the grace period
   (period 0: no retry record; each proposal stands alone);
2. `SET NX` on the reuse marker with that rotation's id: whoever writes it first names the
   rotation that consumes the token. Finding another rotation's id there means the token was
   consumed before, by a rotation whose period is over: reuse;
3. the token is consumed (`take`) and the rotation's tokens are issued into the grant. A grant
   revoked meanwhile (its tombstone) deletes them again, as for every issue, so a retry cannot
   bring a revoked grant's tokens back (the period is far shorter than the tombstone lives).
"""

from __future__ import annotations

import secrets

from pydantic import BaseModel

from auth_server import crypto
from auth_server.clients.authentication import AuthenticatedClient
from auth_server.dpop import check_bound_key
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext, invalid_grant, requested_scopes
from auth_server.grants.grant import GrantRecord
from auth_server.params import Form
from auth_server.tokens import Derivation, IssuedTokens, derived_refresh_token
from shared import scopes as scope_model
from shared.storage import records
from shared.storage.records import refresh_key, refresh_retry_key, rotated_refresh_key

_INVALID = "the refresh token is invalid, expired or revoked"
REVOKED_IN_FLIGHT = "the grant was revoked while this request was in flight"
RETRY_NOTE = "the same tokens again: a retry within REFRESH_TOKEN_GRACE_PERIOD"


class RotatedRefreshToken(BaseModel):
    """Reuse memory of a consumed token: its client and grant, and the rotation that consumed it
    ("" when written by a version without a grace period: no retry matches it)."""

    client_id: str
    grant_id: str
    rotation: str = ""


class Rotation(BaseModel):
    """One rotation of one refresh token, as a retry within the grace period needs it to answer
    the same again. No credential: the salt derives nothing without the presented token."""

    rotation: str
    salt: str
    issued_at: int
    jti: str
    client_id: str
    grant_id: str
    subject: str
    scope: str  # the access token's (a refresh may narrow it)
    refresh_scope: str  # the grant's full scope, which the next refresh token carries again
    resource: str
    token_exp: int  # when the presented token would have expired: how long reuse is remembered
    cnf_jkt: str | None = None  # the DPoP key its access token is bound to: a retry proves the same


async def exchange(ctx: GrantContext, caller: AuthenticatedClient, form: Form, ip: str) -> IssuedTokens:
    token = form.require("refresh_token")
    record = await ctx.tokens.find_refresh(token)
    proposal: Rotation | None = None
    if record is not None:
        if record.client_id != caller.client_id:
            raise invalid_grant(_INVALID)  # not its token: the same answer as for an unknown one
        _check_resource(form, record.resource)
        check_bound_key(record.cnf_jkt, ctx.dpop, "the refresh token")  # RFC 9449 section 5
        scopes = requested_scopes(form.get("scope"), scope_model.parse(record.scope))
        proposal = Rotation(
            rotation=secrets.token_urlsafe(12),
            salt=crypto.new_credential(),
            issued_at=int(ctx.clock()),
            jti=secrets.token_urlsafe(16),
            client_id=record.client_id,
            grant_id=record.grant_id,
            subject=record.sub,
            scope=" ".join(scopes),
            refresh_scope=record.scope,
            resource=record.resource,
            token_exp=record.exp,
            cnf_jkt=ctx.dpop.jkt if ctx.dpop is not None else None,
        )
        rotation = await _propose(ctx, token, proposal)
    else:
        found = await _retry_record(ctx, token)
        if found is None:
            await _on_reuse(ctx, caller, token, ip)
            raise invalid_grant(_INVALID)
        if found.client_id != caller.client_id:
            raise invalid_grant(_INVALID)  # not its token: the same answer as for an unknown one
        _check_resource(form, found.resource)
        rotation = found

    if rotation.cnf_jkt != (ctx.dpop.jkt if ctx.dpop is not None else None):
        raise invalid_grant("a retried refresh must prove the same DPoP key as the first, or none as it did")
    derivation = Derivation(secret=token, salt=rotation.salt, issued_at=rotation.issued_at, jti=rotation.jti)
    retry = proposal is None or rotation.rotation != proposal.rotation
    if not await _consume(ctx, token, rotation) or (retry and await _successor_rotated(ctx, derivation)):
        await _on_reuse(ctx, caller, token, ip)
        raise invalid_grant(_INVALID)

    return await ctx.issue_in_grant(
        await ctx.grants.get(rotation.grant_id) or _grant_from(rotation),
        scopes=scope_model.parse(rotation.scope),
        refresh_scopes=scope_model.parse(rotation.refresh_scope),
        ttl=ctx.tokens.refresh_ttl,
        grant_type="refresh_token",
        ip=ip,
        revoked_meanwhile=REVOKED_IN_FLIGHT,
        derivation=derivation,
        note=RETRY_NOTE if retry else None,
    )


def _check_resource(form: Form, granted: str) -> None:
    resource = form.get("resource")
    if resource is not None and resource != granted:
        raise OAuthError("invalid_target", "a refresh cannot change the resource")


async def _propose(ctx: GrantContext, token: str, proposal: Rotation) -> Rotation:
    """The rotation of this token: `proposal`, unless another presentation's came first within
    the grace period."""
    grace = ctx.settings.refresh_token_grace_period
    if grace <= 0:
        return proposal
    if await records.write(ctx.store, refresh_retry_key(token), proposal, ttl=grace, only_if_absent=True):
        return proposal
    return await _retry_record(ctx, token) or proposal  # (expired just now: the marker decides)


async def _retry_record(ctx: GrantContext, token: str) -> Rotation | None:
    if ctx.settings.refresh_token_grace_period <= 0:
        return None
    return await records.read(ctx.store, refresh_retry_key(token), Rotation)


async def _consume(ctx: GrantContext, token: str, rotation: Rotation) -> bool:
    """Mark the token consumed by `rotation` and delete it; False if another rotation consumed it
    before (reuse), or an unreadable marker stands in the way (failing closed). Every presentation
    of one rotation writes the same marker and takes the token: whichever gets there first, the
    others change nothing."""
    marker = RotatedRefreshToken(
        client_id=rotation.client_id, grant_id=rotation.grant_id, rotation=rotation.rotation
    )
    remember = max(rotation.token_exp - int(ctx.clock()), ctx.settings.refresh_token_grace_period, 1)
    key = rotated_refresh_key(token)
    if not await records.write(ctx.store, key, marker, ttl=remember, only_if_absent=True):
        existing = await records.read(ctx.store, key, RotatedRefreshToken)
        if existing is None or existing.rotation != rotation.rotation:
            return False
    await ctx.store.take(refresh_key(token))
    return True


async def _successor_rotated(ctx: GrantContext, derivation: Derivation) -> bool:
    """Whether the refresh token this rotation issued has been rotated in its turn: a retry then
    comes from a generation the client has left behind, and answering it would hand out a
    consumed token again."""
    return await ctx.store.get(rotated_refresh_key(derived_refresh_token(derivation))) is not None


def _grant_from(rotation: Rotation) -> GrantRecord:
    return GrantRecord(
        grant_id=rotation.grant_id,
        client_id=rotation.client_id,
        subject=rotation.subject,
        scope=rotation.refresh_scope,
        resource=rotation.resource,
        created_at=rotation.issued_at,
    )


async def _on_reuse(ctx: GrantContext, caller: AuthenticatedClient, token: str, ip: str) -> None:
    """A rotated token came back: end its grant, unless another client is presenting it (that
    client cannot be its owner, so it learns nothing and changes nothing)."""
    rotated = await records.read(ctx.store, rotated_refresh_key(token), RotatedRefreshToken)
    if rotated is None or rotated.client_id != caller.client_id:
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
