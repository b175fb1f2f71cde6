"""The services the endpoints use, built once per app: what the front channel (the pages a
browser visits) and the back channel (/token, /introspect, /revoke, /jwks) share.

Nothing here is global, so two apps in one process (tests, internal and external mode side by
side) never share state except through the Store they are given. `app.py` builds these and hands
them to the endpoints; nothing here knows an endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from auth_server.audit import AuditLog
from auth_server.authorized_apps import AuthorizedApps
from auth_server.clients.assertions import ClientAssertions
from auth_server.clients.authentication import ClientAuthenticator
from auth_server.clients.registry import DisabledClients, StoreClientRegistry
from auth_server.consents import ConsentMemory
from auth_server.dpop import TokenEndpointProofs
from auth_server.enterprise_idps import EnterpriseIdps
from auth_server.grants.context import GrantContext
from auth_server.grants.grant import Grants
from auth_server.models import ClientRegistry
from auth_server.pending import PendingAuthorizations
from auth_server.rate_limit import RateLimiter
from auth_server.sessions import BrowserSessions
from auth_server.signing_keys import SigningKeys
from auth_server.tokens import TokenService
from auth_server.users import UserDirectory
from shared.settings import Settings
from shared.storage.base import Store

if TYPE_CHECKING:
    from auth_server.upstream import UpstreamProvider


@dataclass(frozen=True, slots=True)
class FrontChannel:
    """The services the interactive endpoints use (/authorize, sign-in, consent, account)."""

    settings: Settings
    store: Store
    registry: StoreClientRegistry
    users: UserDirectory
    sessions: BrowserSessions
    pending: PendingAuthorizations
    consents: ConsentMemory
    apps: AuthorizedApps  # what each user authorized: consent goes through it, the account page reads it
    audit: AuditLog
    limiter: RateLimiter
    clock: Callable[[], float] = field(default=time.time)
    upstream: UpstreamProvider | None = None  # where users sign in, with UPSTREAM_OIDC_ISSUER

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, registry: StoreClientRegistry, *, audit: AuditLog | None = None
    ) -> FrontChannel:
        audit = audit or AuditLog(settings.audit_log)
        consents = ConsentMemory(store)
        upstream = None
        if settings.upstream_oidc_issuer:
            from auth_server.upstream import UpstreamProvider  # authlib's client: only when used

            upstream = UpstreamProvider.from_settings(settings, store)
        return cls(
            settings=settings,
            store=store,
            registry=registry,
            users=UserDirectory.from_settings(settings),
            sessions=BrowserSessions.from_settings(settings, store),
            pending=PendingAuthorizations(store),
            consents=consents,
            apps=AuthorizedApps(store, audit, consents=consents),
            audit=audit,
            limiter=RateLimiter(store, settings.rate_limit_per_minute, audit=audit),
            upstream=upstream,
        )


@dataclass(frozen=True, slots=True)
class BackChannel:
    """The services /token, /introspect, /revoke and /jwks use."""

    settings: Settings
    store: Store
    keys: SigningKeys
    tokens: TokenService
    grants: Grants
    apps: AuthorizedApps
    clients: ClientAuthenticator
    audit: AuditLog
    limiter: RateLimiter
    proofs: TokenEndpointProofs  # DPoP at /token (RFC 9449)
    enterprise_idps: EnterpriseIdps | None = None  # the jwt-bearer grant's (ENTERPRISE_IDP_ISSUERS)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        registry: ClientRegistry,
        *,
        audit: AuditLog | None = None,
        limiter: RateLimiter | None = None,
        keys: SigningKeys | None = None,
    ) -> BackChannel:
        audit = audit or AuditLog(settings.audit_log)
        keys = keys or SigningKeys.from_settings(settings, store)
        grants = Grants(store)
        return cls(
            settings=settings,
            store=store,
            keys=keys,
            tokens=TokenService.from_settings(settings, store, keys),
            grants=grants,
            apps=AuthorizedApps(store, audit, grants=grants),
            clients=ClientAuthenticator(
                registry, realm=settings.issuer, assertions=ClientAssertions.from_settings(settings, store)
            ),
            audit=audit,
            limiter=limiter or RateLimiter(store, settings.rate_limit_per_minute, audit=audit),
            proofs=TokenEndpointProofs.from_settings(settings, store),
            enterprise_idps=EnterpriseIdps.from_settings(settings),
        )

    @property
    def grant_context(self) -> GrantContext:
        return GrantContext(
            self.settings,
            self.store,
            self.tokens,
            self.grants,
            self.audit,
            self.apps,
            DisabledClients(self.store),
        )
