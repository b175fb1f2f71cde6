"""The authorization server as routes (internal mode) or as its own app (external mode).

`create_auth_routes` is what both modes share: the MCP server's composition root mounts these
routes in its own app, `create_auth_app` wraps them for `python -m auth_server`. This is the one
module that knows both the services (`services.py`) and the endpoints (`endpoints/`): it builds
the services once and hands them to each endpoint. One client registry, audit log and rate
limiter serve the front channel (metadata, registration, the browser pages) and the back channel
(token, introspection, revocation, JWKS).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from auth_server.admin.api import admin_routes
from auth_server.admin.credentials import AdminCredentials
from auth_server.admin.service import AdminService
from auth_server.audit import AuditLog
from auth_server.clients.registry import StoreClientRegistry, preregistered_clients
from auth_server.endpoints.account import account_routes, account_sign_in_path, local_account_sign_in
from auth_server.endpoints.authorize import authorize_endpoint
from auth_server.endpoints.consent import consent_form, consent_page
from auth_server.endpoints.flow import Page
from auth_server.endpoints.introspection import introspection_endpoint
from auth_server.endpoints.jwks import jwks_endpoint
from auth_server.endpoints.login import login_form, login_page
from auth_server.endpoints.metadata import metadata_routes
from auth_server.endpoints.registration import registration_endpoint
from auth_server.endpoints.revocation import revocation_endpoint
from auth_server.endpoints.token import token_endpoint
from auth_server.services import BackChannel, FrontChannel
from auth_server.urls import Endpoint, endpoint_path
from auth_server.users import DEV_PASSWORD, DEV_USER
from shared import startup
from shared.cors import open_route
from shared.forwarded import forwarded_middleware
from shared.health import ReadinessProbe, health_routes
from shared.logs import RequestIdMiddleware
from shared.metrics import HttpMetricsMiddleware, metrics_routes, route_paths
from shared.runtime import worker_app
from shared.settings import Settings, load_settings
from shared.storage.base import Store
from shared.storage.factory import open_store
from shared.tracing import AUTH_SERVICE_NAME, HttpTracingMiddleware, active_tracer, configure_tracing


def front_channel_routes(fc: FrontChannel) -> list[BaseRoute]:
    """Registration (open to any origin, `shared/cors.py`) and the pages a person's browser
    visits (no CORS on any page)."""
    settings = fc.settings
    return [
        open_route(
            endpoint_path(settings, "register"),
            registration_endpoint(fc.registry, fc.limiter, fc.audit),
            ["POST"],
        ),
        Route(endpoint_path(settings, "authorize"), authorize_endpoint(fc), methods=["GET", "POST"]),
        *sign_in_routes(fc),
        Route(endpoint_path(settings, "consent"), consent_page(fc), methods=["GET"]),
        Route(endpoint_path(settings, "consent"), consent_form(fc), methods=["POST"]),
        *account_routes(fc),
    ]


def sign_in_routes(fc: FrontChannel) -> list[BaseRoute]:
    """The login step (of an authorization, and of the account page): local users' password
    form, or sign-in at UPSTREAM_OIDC_ISSUER."""
    if fc.settings.upstream_oidc_issuer:
        from auth_server.endpoints.federated_login import federated_login_routes

        return federated_login_routes(fc)
    return [
        Route(endpoint_path(fc.settings, "login"), login_page(fc), methods=["GET"]),
        Route(endpoint_path(fc.settings, "login"), login_form(fc), methods=["POST"]),
        Route(account_sign_in_path(fc), local_account_sign_in(fc), methods=["POST"]),
    ]


def backchannel_routes(channel: BackChannel) -> list[BaseRoute]:
    """The back-channel routes at the issuer's path, all open to any origin (`shared/cors.py`):
    browser-based MCP clients call them, and they take no cookies, so no ambient authority leaks."""
    settings = channel.settings
    routes: list[BaseRoute] = []
    apis: list[tuple[Endpoint, Callable[[BackChannel], Page]]] = [
        ("token", token_endpoint),
        ("introspect", introspection_endpoint),
        ("revoke", revocation_endpoint),
    ]
    for name, make in apis:
        path = endpoint_path(settings, name)
        routes.append(open_route(path, make(channel), ["POST"]))
    routes.append(open_route(endpoint_path(settings, "jwks"), jwks_endpoint(channel), ["GET"]))
    return routes


def create_auth_routes(
    settings: Settings,
    store: Store,
    *,
    on_revoked: Callable[[str], None] | None = None,
    readiness: list[ReadinessProbe] | None = None,
) -> list[BaseRoute]:
    """Every route of the authorization server, at the issuer's path (see `urls.py`).
    `on_revoked(subject)` hears of every revocation (internal mode: the MCP server's caches).
    `readiness` gets what /readyz must check besides storage: with UPSTREAM_OIDC_ISSUER, a
    provider whose metadata we can use (otherwise nobody can sign in)."""
    registry = StoreClientRegistry.from_settings(settings, store)
    audit = AuditLog(settings.audit_log, on_revoked=on_revoked)
    front = FrontChannel.from_settings(settings, store, registry, audit=audit)
    if readiness is not None and front.upstream is not None:
        readiness.append(front.upstream.readiness_probe())
    back = BackChannel.from_settings(settings, store, registry, audit=front.audit, limiter=front.limiter)
    return [
        *metadata_routes(settings),
        *front_channel_routes(front),
        *backchannel_routes(back),
        *admin_api_routes(settings, back, registry),
    ]


def admin_api_routes(settings: Settings, back: BackChannel, registry: StoreClientRegistry) -> list[BaseRoute]:
    """The admin API (ADMIN_TOKEN_SHA256 set; otherwise no route at all), acting through the back
    channel's services: a rotated signing key signs in this process at once."""
    credentials = AdminCredentials.from_settings(settings)
    if not credentials:
        return []
    service = AdminService(
        back.store,
        registry,
        back.grants,
        back.apps,
        back.keys,
        back.audit,
        token_format=settings.token_format,
    )
    return admin_routes(settings, service, credentials, back.limiter, back.audit)


def authorization_server_facts(settings: Settings) -> startup.AuthorizationServerFacts:
    """What the start-up check and the banner need to know about this authorization server."""
    introspection_client = settings.introspection_client_id in preregistered_clients(settings)
    return startup.AuthorizationServerFacts(
        introspection_client=introspection_client,
        demo_login=(DEV_USER, DEV_PASSWORD) if settings.uses_demo_user else None,
    )


def authorization_server_role(settings: Settings) -> startup.Role:
    """What the standalone authorization server serves, for the start-up check and the banner."""
    return startup.Role(
        "authorization server", serves_mcp=False, authorization_server=authorization_server_facts(settings)
    )


def create_auth_worker_app() -> Starlette:
    """One worker of `python -m auth_server --workers N` (see `create_auth_app`); uvicorn calls
    this in each worker process with the settings the supervisor passed on."""
    return worker_app(lambda settings: create_auth_app(settings, announce=False))


def create_auth_app(
    settings: Settings | None = None, store: Store | None = None, *, announce: bool = True
) -> Starlette:
    """The standalone authorization server (AUTH_MODE=external), with health checks. `settings`
    default to the environment and `.env`; `store` replaces the Store the settings name
    (embedding, tests); its caller then closes it. `announce`: log the banner when the app starts
    (not in the workers of `--workers N`, whose supervisor logs it once).

    Refuses (`startup.UnsafeOutsideDevelopment`, a readable exit) outside development while a
    development default is in effect (shared/startup.py), and (`startup.WorkersRefused`) several
    workers on the in-memory store."""
    if settings is None:
        settings = load_settings()
        startup.warn_unknown_settings()
    role = authorization_server_role(settings)
    development_defaults = startup.check_deployment(settings, role)
    startup.check_workers(settings, role)
    configure_tracing(AUTH_SERVICE_NAME)  # once per process, when OTEL_* variables ask for traces
    tracer = active_tracer()
    owns_store = store is None
    store = open_store(settings) if store is None else store

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if announce:
            startup.log_banner(settings, role, defaults=development_defaults)
        try:
            yield
        finally:
            if owns_store:
                await store.close()

    readiness: list[ReadinessProbe] = []
    auth_routes = create_auth_routes(settings, store, readiness=readiness)
    routes: list[BaseRoute] = [*health_routes(store, readiness), *auth_routes, *metrics_routes(settings)]
    middleware = [
        *forwarded_middleware(settings, [problem.setting for problem in development_defaults]),
        Middleware(RequestIdMiddleware),
        Middleware(HttpMetricsMiddleware, routes=route_paths(routes)),
    ]
    if tracer is not None:  # the child of the MCP server's call when it carries `traceparent`
        middleware.insert(0, Middleware(HttpTracingMiddleware, tracer=tracer, routes=route_paths(routes)))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
