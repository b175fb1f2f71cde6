"""Federated login's calls to the upstream provider (auth_server/upstream.py) carry the trace.

authlib's client makes every call to UPSTREAM_OIDC_ISSUER (discovery, token, JWKS, userinfo).
With tracing on, each is a CLIENT span of the sign-in's trace and the provider gets its
`traceparent` and `baggage` (a configured peer, like the authorization server); with tracing off
nothing is added. The provider here is a real HTTP server on 127.0.0.1 that serves OpenID
metadata and a JWKS and records the headers it was sent; the tracer is an SDK TracerProvider with
an in-memory exporter of this test's own (never the process-wide one).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_server.upstream import UpstreamProvider
from shared import tracing
from shared.storage.memory import MemoryStore
from tests.fixtures.live_server import live_server


class Provider:
    """An OpenID provider's discovery and JWKS endpoints, remembering what each request carried."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str]]] = []
        self.issuer = ""

    def app(self, base_url: str) -> Starlette:
        self.issuer = base_url

        async def metadata(request: Request) -> JSONResponse:
            self.received.append((request.url.path, dict(request.headers)))
            return JSONResponse(
                {
                    "issuer": base_url,
                    "authorization_endpoint": f"{base_url}/authorize",
                    "token_endpoint": f"{base_url}/token",
                    "jwks_uri": f"{base_url}/jwks",
                    "response_types_supported": ["code"],
                }
            )

        async def jwks(request: Request) -> JSONResponse:
            self.received.append((request.url.path, dict(request.headers)))
            return JSONResponse({"keys": []})

        return Starlette(routes=[Route("/.well-known/openid-configuration", metadata), Route("/jwks", jwks)])


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider()
    with live_server(running.app):
        yield running


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(tracing.bounded(SimpleSpanProcessor(exporter)))
    yield tracer_provider.get_tracer("test"), exporter
    tracer_provider.shutdown()


def upstream(provider: Provider, tracer: trace.Tracer | None) -> UpstreamProvider:
    return UpstreamProvider(
        MemoryStore(),
        issuer=provider.issuer,
        client_id="mcp-reference-as",
        client_secret=None,
        scope="openid email",
        callback_url="http://127.0.0.1:1/login/callback",
        tracer=tracer,
    )


async def test_discovery_and_the_jwks_fetch_are_client_spans_of_the_sign_in_and_carry_its_context(
    provider: Provider, spans: tuple[trace.Tracer, InMemorySpanExporter]
) -> None:
    tracer, exporter = spans
    federated = upstream(provider, tracer)
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("GET /login/callback") as sign_in:
            metadata = await federated.metadata()
            await federated._app.fetch_jwk_set(force=True)
    finally:
        context.detach(token)

    assert metadata["issuer"] == provider.issuer
    clients = {s.name: s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT}
    assert set(clients) == {"GET /.well-known/openid-configuration", "GET /jwks"}
    trace_id = trace.format_trace_id(sign_in.get_span_context().trace_id)
    for path, headers in provider.received:
        span = clients[f"GET {path}"]
        assert span.parent is not None
        assert span.parent.span_id == sign_in.get_span_context().span_id
        span_id = trace.format_span_id(span.context.span_id)
        assert headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-"), (path, headers)
        assert headers["baggage"] == "tenant=acme"
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 200
    assert [path for path, _ in provider.received] == ["/.well-known/openid-configuration", "/jwks"]


async def test_without_tracing_the_provider_gets_no_trace_context_and_authlibs_own_client(
    provider: Provider,
) -> None:
    federated = upstream(provider, None)
    metadata = await federated.metadata()

    assert metadata["issuer"] == provider.issuer
    ((path, headers),) = provider.received
    assert path == "/.well-known/openid-configuration"
    assert not {"traceparent", "tracestate", "baggage"} & set(headers)
    assert type(federated._app).client_cls is federated._app.client_cls  # nothing replaced
