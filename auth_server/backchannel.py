"""Wiring of the back channel: /token, /introspect, /revoke and /jwks, with what they share.

`create_auth_routes` (app.py) calls `backchannel_routes`; nothing here is global, so two apps in
one process (tests, internal and external mode side by side) never share state except through
the Store they are given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.routing import Route

from auth_server import urls
from auth_server.audit import AuditLog
from auth_server.authorized_apps import AuthorizedApps
from auth_server.client_auth import ClientAuthenticator
from auth_server.clients import DisabledClients
from auth_server.cors import preflight, with_cors
from auth_server.endpoints.forms import Endpoint
from auth_server.grants.context import GrantContext
from auth_server.grants.grant import Grants
from auth_server.models import ClientRegistry
from auth_server.rate_limit import RateLimiter
from auth_server.signing_keys import SigningKeys
from auth_server.tokens import TokenService
from shared.settings import Settings
from shared.storage.base import Store


@dataclass(frozen=True, slots=True)
class BackChannel:
    settings: Settings
    store: Store
    keys: SigningKeys
    tokens: TokenService
    grants: Grants
    apps: AuthorizedApps
    clients: ClientAuthenticator
    audit: AuditLog
    limiter: RateLimiter

    @classmethod
    def create(
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
        keys = keys or SigningKeys(settings, store)
        grants = Grants(store)
        return cls(
            settings=settings,
            store=store,
            keys=keys,
            tokens=TokenService(settings, store, keys),
            grants=grants,
            apps=AuthorizedApps(store, audit, grants=grants),
            clients=ClientAuthenticator(registry, realm=settings.issuer),
            audit=audit,
            limiter=limiter or RateLimiter(store, settings.rate_limit_per_minute, audit=audit),
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


def backchannel_routes(channel: BackChannel) -> list[Route]:
    """The back-channel routes at the issuer's path. /token, /introspect and /revoke answer CORS
    for any origin (browser-based MCP clients call them; they take no cookies, so no ambient
    authority leaks), /jwks likewise (see its module)."""
    from auth_server.endpoints.introspection import introspection_endpoint
    from auth_server.endpoints.jwks import jwks_endpoint
    from auth_server.endpoints.revocation import revocation_endpoint
    from auth_server.endpoints.token import token_endpoint

    settings = channel.settings
    routes: list[Route] = []
    apis: list[tuple[urls.Endpoint, Callable[[BackChannel], Endpoint]]] = [
        ("token", token_endpoint),
        ("introspect", introspection_endpoint),
        ("revoke", revocation_endpoint),
    ]
    for name, make in apis:
        path = urls.endpoint_path(settings, name)
        routes.append(Route(path, with_cors(make(channel), ["POST"]), methods=["POST"]))
        routes.append(Route(path, preflight(["POST"]), methods=["OPTIONS"]))
    routes.append(
        Route(urls.endpoint_path(settings, "jwks"), jwks_endpoint(channel), methods=["GET", "OPTIONS"])
    )
    return routes
