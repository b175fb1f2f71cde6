"""The composition root: `create_app(settings)` wires storage, validation, auth routes and MCP.

This is the only module that knows both `mcp_server` and `auth_server`: in internal mode it
mounts the authorization server's routes in this process and validates tokens against the
same store; in external mode it validates by RFC 7662 introspection over HTTP.

Every way of serving the MCP server builds its app here (`python -m mcp_server`, or
`uvicorn --factory mcp_server.app:create_app`), so the start-up check (`shared/startup.py`:
development defaults never reach production) and the banner cannot be skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from mcp_server.protection import endpoint_guard
from mcp_server.protection.enrichment import TenantCache, TenantLookup
from mcp_server.protection.metadata import metadata_routes
from mcp_server.responses import JsonResponseChoice
from mcp_server.server import build_mcp_server
from mcp_server.sessions import LegacySseQuota, SessionsEndpoint, session_ledger, streamable_http_sessions
from mcp_server.tasks.extension import task_scopes
from mcp_server.tasks.runner import GrantCheck
from mcp_server.tenants import look_up_tenant
from shared import startup
from shared.dpop import ProofVerifier
from shared.forwarded import forwarded_middleware
from shared.health import ReadinessProbe, health_routes
from shared.logs import RequestIdMiddleware
from shared.metrics import (
    HttpMetricsMiddleware,
    keep_publishing,
    metrics_routes,
    multiprocess,
    route_paths,
    watch_introspection,
    watch_tenants,
)
from shared.revocations import RevocationFeed
from shared.runtime import worker_app
from shared.settings import Settings, load_settings
from shared.storage import Store
from shared.storage.factory import open_store
from shared.token_exchange import TokenExchanger
from shared.tracing import (
    MCP_SERVICE_NAME,
    HttpTracingMiddleware,
    TracedValidator,
    active_tracer,
    configure_tracing,
)
from shared.validation import TokenValidator
from shared.validators.api_keys import ApiKeyValidator
from shared.validators.chain import ChainValidator

# Host/Origin are checked once, by mcp_server.protection.origin (with ALLOWED_HOSTS/ORIGINS), in
# front of authentication; the SDK's own loopback-only check would refuse configured origins.
SDK_HOST_CHECK_OFF = TransportSecuritySettings(enable_dns_rebinding_protection=False)


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    *,
    tenant_lookup: TenantLookup = look_up_tenant,
    announce: bool = True,
) -> Starlette:
    """The MCP app for `settings` (default: read from the environment and `.env`). `store`
    replaces the Store the settings name (embedding; tests serving several apps over one
    in-memory Store); its caller then closes it. `tenant_lookup` replaces
    `mcp_server.tenants.look_up_tenant` (tests, the benchmark); a fork edits that one.
    `announce`: log the banner when the app starts (not in the workers of `--workers N`, whose
    supervisor logs it once).

    Refuses (`startup.UnsafeOutsideDevelopment`, a readable exit) outside development while a
    development default is in effect, and (`startup.WorkersRefused`) several workers that would
    split state."""
    if settings is None:
        settings = load_settings()
        startup.warn_unknown_settings()
    role = mcp_server_role(settings)
    development_defaults = startup.check_deployment(settings, role)
    startup.check_workers(settings, role)
    configure_tracing(MCP_SERVICE_NAME)  # once per process, when OTEL_* variables ask for traces
    tracer = active_tracer()
    owns_store = store is None
    store = open_store(settings) if store is None else store
    mcp, tools, tasks = build_mcp_server(settings, store, grant_alive=_grant_check(settings, store))
    # The session manager is mounted by us so that our own middleware (origin check, CORS,
    # authentication) wraps /mcp; sessions of both transports are counted in one ledger, with a
    # cap and a quota per principal (mcp_server/sessions.py).
    ledger = session_ledger(settings)
    session_manager = streamable_http_sessions(mcp, settings, SDK_HOST_CHECK_OFF, ledger)
    # Who hears of revocations in this process (shared/revocations.py): the tenant cache.
    revocations = RevocationFeed()
    tenants = TenantCache.from_settings(settings, tenant_lookup)
    revocations.subscribe(tenants.invalidate)
    watch_tenants(tenants)
    validation = _validators(settings, store, revocations)
    validator, api_keys = validation.validator, validation.api_keys
    exchanger = _token_exchanger(settings, store)
    if tracer is not None and validator is not None:  # a `validate token` span around each one
        validator = TracedValidator(validator, tracer=tracer, kind=settings.auth_mode)
        if api_keys is not None:
            api_keys = TracedValidator(api_keys, tracer=tracer, kind="api_key")
    guard = endpoint_guard(
        settings,
        validator=validator,
        api_key_validator=api_keys,
        tool_scopes=tools.required_scopes,
        tenants=tenants,
        extra_scopes=task_scopes(tasks.store),
        exchanger=exchanger,
        proofs=ProofVerifier.from_settings(settings, store, purpose="resource") if validator else None,
    )

    endpoint: ASGIApp = SessionsEndpoint(session_manager)
    if settings.mcp_json_responses == "auto":
        endpoint = JsonResponseChoice(endpoint, answers_only=tools.answers_only)
    auth_routes: list[BaseRoute] = []
    if settings.auth_mode == "internal":  # its readiness joins ours: federated login's provider
        auth_routes = _auth_server_routes(settings, store, revocations, validation.readiness)
    routes: list[BaseRoute] = [*health_routes(store, validation.readiness), Route("/mcp", guard(endpoint))]
    if validator is not None:
        routes += metadata_routes(settings)
    routes += auth_routes
    if settings.legacy_sse:
        # The deprecated HTTP+SSE transport behind the same guard; the SDK binds each SSE session
        # to the principal that opened it and answers 404 to messages from anyone else.
        sse_app = mcp.sse_app(
            sse_path="/sse", message_path="/messages/", transport_security=SDK_HOST_CHECK_OFF
        )
        sse = guard(LegacySseQuota(sse_app, ledger))
        routes += [Route("/sse", sse), Route("/messages/", sse)]
    routes += _mounted_downstream_demo(settings)
    routes += metrics_routes(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if announce:
            startup.log_banner(settings, role, defaults=development_defaults)
        background: list[asyncio.Task[None]] = []
        if validation.announce is not None:  # in every worker: each discovers the provider itself
            background.append(asyncio.create_task(validation.announce()))  # the provider may be slow
        if multiprocess():  # one of several workers: its cache counters into the shared metrics
            background.append(asyncio.create_task(keep_publishing()))
        async with session_manager.run():
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await tasks.aclose()
                for service in (validation.validator, exchanger):  # the validator, untraced
                    close = getattr(service, "aclose", None)
                    if close is not None:
                        await close()
                if owns_store:
                    await store.close()

    middleware = [
        *forwarded_middleware(settings, [problem.setting for problem in development_defaults]),
        Middleware(RequestIdMiddleware),
        Middleware(HttpMetricsMiddleware, routes=route_paths(routes)),
    ]
    if tracer is not None:  # outermost: every log line of the request carries its trace id
        middleware.insert(0, Middleware(HttpTracingMiddleware, tracer=tracer, routes=route_paths(routes)))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


def create_worker_app() -> Starlette:
    """One worker of `python -m mcp_server --workers N`: uvicorn calls this in each worker process
    (`shared/runtime.py`). Settings come from the environment the supervisor passed on; the
    supervisor checked them and logged the banner once."""
    return worker_app(lambda settings: create_app(settings, announce=False))


def mcp_server_role(settings: Settings) -> startup.Role:
    """What this process serves, for the start-up check and the banner."""
    authorization_server = None
    if settings.auth_mode == "internal":
        from auth_server.app import authorization_server_facts

        authorization_server = authorization_server_facts(settings)
    return startup.Role("MCP server", serves_mcp=True, authorization_server=authorization_server)


@dataclass
class _Validation:
    """How /mcp checks credentials: the bearer validator by AUTH_MODE (None: no authentication),
    the API-key validator (also chained in front of it), what readiness must check besides
    storage, and what to say at start once the provider is known (external mode)."""

    validator: TokenValidator | None = None
    api_keys: TokenValidator | None = None
    readiness: list[ReadinessProbe] = field(default_factory=list)
    announce: Callable[[], Coroutine[Any, Any, None]] | None = None


def _validators(settings: Settings, store: Store, revocations: RevocationFeed) -> _Validation:
    """internal: the AS lives in this process, so tokens are looked up in the shared store (no HTTP).
    external: the trusted provider's tokens (AUTH_SERVER_URL: the bundled AS or any provider,
    docs/identity-providers.md), each checked locally as a JWT or by RFC 7662 introspection as
    TOKEN_VALIDATION decides (`shared/validators/external.py`). none: no authentication
    (loopback only).
    """
    if settings.auth_mode == "none":
        return _Validation()
    validation = _Validation()
    primary: TokenValidator
    if settings.auth_mode == "internal":
        from auth_server.validator import InProcessTokenValidator

        primary = InProcessTokenValidator.from_settings(settings, store)
    else:
        from shared.validators.discovery import ProviderMetadata
        from shared.validators.external import TokenRouter

        # One discovery (RFC 8414, else OpenID) of the trusted issuer, shared by both checks.
        metadata = ProviderMetadata.from_settings(settings)
        validation.readiness.append(metadata.readiness_probe(timeout=settings.introspection_timeout))
        router = TokenRouter.from_settings(settings, metadata=metadata, revocations=revocations)
        if router.introspection is not None:
            watch_introspection(router.introspection)
        validation.announce = router.announce
        primary = router
    validation.validator = primary
    if settings.api_keys:
        validation.api_keys = ApiKeyValidator.from_settings(settings)
        validation.validator = ChainValidator([validation.api_keys, primary])
    return validation


def _token_exchanger(settings: Settings, store: Store) -> TokenExchanger | None:
    """Who exchanges a caller's token for a downstream API's (RFC 8693), with TOKEN_EXCHANGE_
    AUDIENCES: internal, the authorization server's grant in this process; external, its token
    endpoint, as TOKEN_EXCHANGE_CLIENT_ID (docs/agent-identity.md)."""
    if not settings.token_exchange_audiences or settings.auth_mode == "none":
        return None
    if settings.auth_mode == "internal":
        from auth_server.delegation import InProcessTokenExchanger

        return InProcessTokenExchanger.from_settings(settings, store)
    from shared.token_exchange import HttpTokenExchanger

    return HttpTokenExchanger.from_settings(settings)


def _mounted_downstream_demo(settings: Settings) -> list[BaseRoute]:
    """Development convenience: a DOWNSTREAM_API_URL under this server's own URL (such as
    http://127.0.0.1:3232/downstream) serves the demo downstream API in this process, so one
    `make dev-internal` shows token exchange end to end. It is still a separate application that
    knows nothing of this one but the authorization server's published keys; elsewhere it runs as
    `python -m downstream` (docs/agent-identity.md)."""
    url = settings.downstream_api_url
    prefix = settings.mcp_base_url + "/"
    if url is None or not url.startswith(prefix) or settings.auth_mode == "none":
        return []
    from downstream.app import create_downstream_app

    return [Mount("/" + url.removeprefix(prefix), app=create_downstream_app(settings))]


def _grant_check(settings: Settings, store: Store) -> GrantCheck | None:
    """internal: a task stops when the grant it was created under ends (revoked, or expired with
    its last token), since the authorization server's grant records are in the same store.
    Elsewhere the MCP server cannot see grants (docs/tasks.md)."""
    if settings.auth_mode != "internal":
        return None
    from auth_server.grants.grant import Grants

    grants = Grants(store)

    async def alive(grant_id: str) -> bool:
        return await grants.get(grant_id) is not None

    return alive


def _auth_server_routes(
    settings: Settings, store: Store, revocations: RevocationFeed, readiness: list[ReadinessProbe]
) -> list[BaseRoute]:
    """Internal mode: the authorization server's endpoints, served by this same process. Its
    revocations name our own issuer's subjects; its readiness probes join `readiness`."""
    from auth_server.app import create_auth_routes

    def revoked(subject: str) -> None:
        revocations.revoked(settings.issuer, subject)

    return create_auth_routes(settings, store, on_revoked=revoked, readiness=readiness)
