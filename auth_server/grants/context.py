"""What every grant handler needs, passed as one object instead of six arguments."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from auth_server.audit import AuditLog
from auth_server.authorized_apps import AuthorizedApps
from auth_server.clients.registry import DisabledClients
from auth_server.dpop import KeyBinding
from auth_server.errors import OAuthError, quoted
from auth_server.grants.grant import GrantRecord, Grants
from auth_server.resources import served_resources
from auth_server.tokens import Derivation, IssuedTokens, TokenService
from shared import scopes as scope_model
from shared.settings import Settings
from shared.storage.base import Store


@dataclass(frozen=True, slots=True)
class GrantContext:
    settings: Settings
    store: Store
    tokens: TokenService
    grants: Grants
    audit: AuditLog
    apps: AuthorizedApps
    disabled: DisabledClients
    clock: Callable[[], float] = field(default=time.time)
    # The DPoP key this token request proved (auth_server/dpop.py): its tokens are bound to it.
    dpop: KeyBinding | None = None

    @property
    def resources(self) -> tuple[str, ...]:
        return served_resources(self.settings)

    async def issue_in_grant(
        self,
        grant: GrantRecord,
        *,
        scopes: tuple[str, ...],
        refresh_scopes: tuple[str, ...] | None,
        ttl: float,
        grant_type: str,
        ip: str,
        revoked_meanwhile: str,
        derivation: Derivation | None = None,
        note: str | None = None,
    ) -> IssuedTokens:
        """Mint tokens into `grant` (the ones `derivation` determines, if given), (re)save and
        index it for `ttl` (its last use: now) and audit the issue (with `note` as its reason). If
        the grant was revoked while this request was in flight, its app was revoked since the user
        approved it, or its client was disabled meanwhile, the fresh tokens are deleted again and
        the answer is invalid_grant with `revoked_meanwhile`."""
        issued = await self.tokens.issue(
            client_id=grant.client_id,
            subject=grant.subject,
            scopes=scopes,
            resource=grant.resource,
            grant_id=grant.grant_id,
            refresh_scopes=refresh_scopes,
            derivation=derivation,
            cnf_jkt=self.dpop.jkt if self.dpop is not None else None,
            refresh_cnf_jkt=self.dpop.jkt if self.dpop is not None and self.dpop.bind_refresh_token else None,
        )
        if not await self.grants.attach(grant.grant_id, issued.store_keys, ttl):
            raise invalid_grant(revoked_meanwhile)
        used = grant.model_copy(update={"last_used_at": self.clock()})
        if not await self.apps.record_grant(used, ttl):
            raise invalid_grant(revoked_meanwhile)
        # Disabling writes its flag, then ends the client's indexed grants: this grant was indexed
        # above, so either the disabling found it or this read finds the flag.
        if await self.disabled.is_disabled(grant.client_id):
            await self.grants.revoke(grant.grant_id)
            raise invalid_grant("the client was disabled while this request was in flight")
        self.audit.record(
            "token_issued",
            ip=ip,
            client_id=grant.client_id,
            subject=grant.subject,
            grant_id=grant.grant_id,
            grant_type=grant_type,
            scope=issued.scope,
            resource=grant.resource,
            jti=issued.jti,
            reason=note,
        )
        return issued


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def requested_scopes(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes of a token request: omitted means everything allowed; anything outside what
    was allowed (a scope implied by an allowed one counts as inside) is `invalid_scope`
    (OAuth 2.1 sections 3.2.2.1 and 4.3.1)."""
    wanted = scope_model.parse(requested)
    if not wanted:
        return allowed
    within = scope_model.CATALOGUE.expand(allowed)
    outside = [s for s in wanted if s not in within]
    if outside:
        raise OAuthError("invalid_scope", f"scope exceeds the grant: {quoted(' '.join(outside))}")
    return wanted


def granted_within(requested: str | None, *limits: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes of a token request the server grants on its own policy (RFC 6749 section 3.3
    lets it issue fewer than asked, the answer's `scope` then saying which): those requested
    that lie within every one of `limits` (a scope implied by one inside counts as inside); with
    nothing requested, the first limit's that lie within the others. An unknown scope, or
    nothing left, is `invalid_scope`."""
    catalogue = scope_model.CATALOGUE
    wanted = scope_model.parse(requested) or (limits[0] if limits else ())
    unknown = catalogue.unknown(wanted)
    if unknown:
        raise OAuthError("invalid_scope", f"unknown scope {quoted(unknown[0])}")
    within = [catalogue.expand(limit) for limit in limits]
    granted = tuple(scope for scope in wanted if all(scope in inside for inside in within))
    if not granted:
        raise OAuthError("invalid_scope", f"none of the scopes {quoted(' '.join(wanted))} may be granted")
    return granted
