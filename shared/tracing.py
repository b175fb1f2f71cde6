"""OpenTelemetry traces for every process, exported over OTLP/HTTP when the OTEL_* variables ask.

The configuration is the OpenTelemetry SDK's own: `configure_tracing` installs an SDK
`TracerProvider` with a `BatchSpanProcessor` and an `OTLPSpanExporter` only when
`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (or
`OTEL_TRACES_EXPORTER=otlp`), and every other variable (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`,
`OTEL_PROPAGATORS`...) is read by the SDK itself. docs/operations.md ("Tracing") lists the spans.

Decided once, when an app is built: `active_tracer()` is None unless an SDK provider is installed
(ours, or an embedder's, or `opentelemetry-instrument`'s), and with None nothing of this module
is put on the request path at all (no middleware, no client transport, no validator wrapper), so
tracing off costs nothing per request; `make bench` measures it (docs/performance.md).

What may be recorded is decided here too, with an attacker in mind:
- no header, query string, body, token, code or secret is ever an attribute: a server span names
  the method and, for the app's own routes only, the path (an unknown path is client-chosen and
  unbounded); a client span the method, the host and the URL without userinfo or query;
- every attribute value is bounded (closed sets, our own routes and configured endpoints), so a
  client cannot make spans, the export queue or the collector's storage grow;
- W3C trace context (`traceparent`, `tracestate`, `baggage`) from a request is the parent of its
  span and is passed on to the authorization server and the issuer's endpoints (trusted peers we
  are configured with), never to a host a client chose (a client ID metadata document URL).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterable, Sequence
from importlib import metadata
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx2
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span, SpanKind, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.validation import LookupRefused, Principal, TokenRejected, TokenValidator, ValidatorUnavailable

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "mcp-reference-server"
MCP_SERVICE_NAME = "mcp-reference-server"
AUTH_SERVICE_NAME = "mcp-reference-auth-server"
# Probes and scrapes: a span every few seconds per prober that says nothing about the service.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_LENGTH_LIMIT_VARIABLES = ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
# No span attribute value (a client's tool name or JSON-RPC id), status description or span name
# longer than these is exported (the attribute limit unless the operator sets one), so a hostile
# request's spans stay as small as anyone's.
ATTRIBUTE_LENGTH_LIMIT = 256
SPAN_NAME_LIMIT = 128
EVENT_ATTRIBUTE_LIMIT = 4096  # an exception's message and stack trace


# --- configuration --------------------------------------------------------------------------------


def traces_requested() -> bool:
    """Whether the OTEL_* variables ask for traces; a value we cannot honour stops start-up.

    Only OTLP over HTTP (protobuf) is shipped: `grpc`, `http/json` or another exporter would
    silently export nothing, so they are refused with the variable's name (ValueError, which
    `shared.runtime.serve` turns into one line).
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if exporter not in ("", "otlp"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter!r}: this server exports traces with otlp or none")
    requested = exporter == "otlp" or any(os.environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)
    if requested:
        for name in _PROTOCOL_VARIABLES:
            protocol = os.environ.get(name, "").strip().lower()
            if protocol and protocol != "http/protobuf":
                raise ValueError(f"{name}={protocol!r}: this server exports OTLP over http/protobuf only")
            if protocol:
                break
    return requested


def tracer_provider_from_env(service_name: str) -> TracerProvider | None:
    """An SDK provider exporting over OTLP/HTTP as the OTEL_* variables say, or None when they ask
    for no traces. `service_name` is used unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES
    names the service. The SDK is imported only here: a process without tracing never loads it."""
    if not traces_requested():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    ours: dict[str, str] = {}
    if not OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        ours[SERVICE_NAME] = service_name
    if not resource.attributes.get(SERVICE_VERSION):
        with contextlib.suppress(metadata.PackageNotFoundError):
            ours[SERVICE_VERSION] = metadata.version("mcp-reference-server")
    if ours:
        resource = resource.merge(Resource(ours))
    # The sampler (OTEL_TRACES_SAMPLER), span limits (OTEL_*_LIMIT), batching (OTEL_BSP_*) and the
    # exporter's endpoint, headers, timeout, compression and certificates are the SDK's to read.
    limits = SpanLimits()
    if not any(name in os.environ for name in _LENGTH_LIMIT_VARIABLES):
        limits = SpanLimits(max_span_attribute_length=ATTRIBUTE_LENGTH_LIMIT)
    provider = TracerProvider(resource=resource, span_limits=limits)
    provider.add_span_processor(bounded(BatchSpanProcessor(OTLPSpanExporter())))
    return provider


def bounded(inner: SpanProcessor) -> SpanProcessor:
    """`inner`, handed spans whose name, status description and event attributes are bounded
    (SPAN_NAME_LIMIT, ATTRIBUTE_LENGTH_LIMIT, EVENT_ATTRIBUTE_LIMIT characters). The MCP SDK names
    its spans `{method} {target}` with the tool or prompt name the client sent, and describes and
    records errors with messages that quote it: megabytes, where the span attribute limit does not
    reach. A stack trace keeps its end, where the error is. Spans within the bounds (all but a
    hostile client's) are passed on as they are."""
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
    from opentelemetry.trace import Status

    def too_long(event: Event) -> bool:
        return any(
            isinstance(v, str) and len(v) > EVENT_ATTRIBUTE_LIMIT for v in (event.attributes or {}).values()
        )

    def cut(key: str, value: Any) -> Any:
        if not isinstance(value, str) or len(value) <= EVENT_ATTRIBUTE_LIMIT:
            return value
        return (
            value[-EVENT_ATTRIBUTE_LIMIT:] if key == "exception.stacktrace" else value[:EVENT_ATTRIBUTE_LIMIT]
        )

    class BoundedSpans(SpanProcessor):
        def on_start(self, span: Any, parent_context: Context | None = None) -> None:
            inner.on_start(span, parent_context)

        def on_end(self, span: ReadableSpan) -> None:
            description = span.status.description or ""
            long_events = any(too_long(event) for event in span.events)
            if len(span.name) > SPAN_NAME_LIMIT or len(description) > ATTRIBUTE_LENGTH_LIMIT or long_events:
                events = span.events
                if long_events:
                    events = tuple(
                        Event(e.name, {k: cut(k, v) for k, v in (e.attributes or {}).items()}, e.timestamp)
                        for e in events
                    )
                span = ReadableSpan(
                    name=span.name[:SPAN_NAME_LIMIT],
                    context=span.context,
                    parent=span.parent,
                    resource=span.resource,
                    attributes=span.attributes,
                    events=events,
                    links=span.links,
                    kind=span.kind,
                    status=Status(span.status.status_code, description[:ATTRIBUTE_LENGTH_LIMIT] or None),
                    start_time=span.start_time,
                    end_time=span.end_time,
                    instrumentation_scope=span.instrumentation_scope,
                )
            inner.on_end(span)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return BoundedSpans()


def configure_tracing(service_name: str) -> None:
    """Install the OTEL_*-configured provider for this process, unless one is installed already
    (an earlier call, an embedder's, `opentelemetry-instrument`'s) or none is asked for.

    Called by each app factory, so every process that builds an app (one per worker) gets its
    own exporter. The provider flushes its spans at interpreter exit.
    """
    if not isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
        return
    provider = tracer_provider_from_env(service_name)
    if provider is None:
        return
    trace.set_tracer_provider(provider)
    _annotate_log_records()
    logger.info("exporting traces over OTLP/HTTP as %s", provider.resource.attributes.get("service.name"))


def active_tracer() -> Tracer | None:
    """This project's tracer when an SDK provider is installed; None means instrument nothing."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        return None
    return provider.get_tracer(INSTRUMENTATION_NAME)


def _annotate_log_records() -> None:
    """Give every log record made inside a span its `trace_id` and `span_id` (shared.logs writes
    them), so a log line leads to its trace. Installed only with tracing on: nothing to pay off."""
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return record

    logging.setLogRecordFactory(factory)


# --- HTTP server spans ------------------------------------------------------------------------------


class _AsgiHeaders(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads propagation headers straight from the ASGI header list (no dict built per request)."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_ASGI_HEADERS = _AsgiHeaders()

# The HTTP server span of the request being served, for the MCP spans inside it: the MCP semantic
# conventions parent an MCP server span on the client's `_meta` context and link the transport's.
current_http_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar("http_span", default=None)


class HttpTracingMiddleware:
    """ASGI middleware: one SERVER span per HTTP request (OpenTelemetry HTTP conventions), the
    child of the W3C trace context in its headers.

    Span name `{method} {route}` for the app's own routes, `{method}` for anything else (whose
    path is not recorded: it is the client's choice and unbounded). Attributes: the method, the
    route, the scheme, the HTTP version, the server's and the TCP peer's address and port, and
    the response status (5xx marks the span as an error). `/healthz`, `/readyz` and `/metrics`
    get no span.
    """

    def __init__(self, app: ASGIApp, *, tracer: Tracer, routes: Iterable[str]) -> None:
        self.app = app
        self._tracer = tracer
        self._routes = frozenset(routes) - UNTRACED_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.name": "http",
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        name = "HTTP" if method == "_OTHER" else method
        route = scope["path"] if scope["path"] in self._routes else None
        if route is not None:
            attributes["http.route"] = route
            attributes["url.path"] = route
            name = f"{name} {route}"
        server, client = scope.get("server"), scope.get("client")
        if server:
            attributes["server.address"], attributes["server.port"] = server[0], server[1]
        if client:
            attributes["client.address"], attributes["network.peer.address"] = client[0], client[0]
            attributes["client.port"] = client[1]
        parent = propagate.extract(scope["headers"], getter=_ASGI_HEADERS)
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def send_and_record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_attribute("error.type", str(status))
                        span.set_status(StatusCode.ERROR)
                await send(message)

            reset = current_http_span.set(span)
            try:
                await self.app(scope, receive, send_and_record)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(StatusCode.ERROR)
                raise
            finally:
                current_http_span.reset(reset)


# --- outbound HTTP ------------------------------------------------------------------------------------


class TracingTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that wraps each request in a CLIENT span (OpenTelemetry HTTP client
    conventions) and, towards a trusted peer, sends the current trace context with it.

    `trusted_peer`: the configured authorization server or issuer, whose endpoints are fixed by
    configuration, so the span is named `{method} {path}` and `traceparent`, `tracestate` and
    `baggage` are injected. Otherwise (a URL a client chose) the span is named `{method}` and no
    context leaves the process: baggage can carry what an upstream hop put there for us alone.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, tracer: Tracer, trusted_peer: bool) -> None:
        self._inner = inner
        self._tracer = tracer
        self._trusted = trusted_peer

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        method = request.method if request.method in _METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
        }
        name = "HTTP" if method == "_OTHER" else method
        if self._trusted:
            # A configured endpoint: its path is fixed, so it is the template; never the query
            # or userinfo (netloc carries neither).
            attributes["url.full"] = f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
            attributes["url.template"] = url.path
            name = f"{name} {url.path}"
        with self._tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if self._trusted:
                propagate.inject(request.headers)
            try:
                response = await self._inner.handle_async_request(request)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(StatusCode.ERROR)
                raise
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(StatusCode.ERROR)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class PeerClient:
    """The HTTP client a validator calls its authorization server with: the one it was given (its
    caller closes it), or one made here on first use (`http_client`, a trusted peer) and closed by
    `aclose`."""

    def __init__(self, given: httpx2.AsyncClient | None, *, timeout: float) -> None:
        self._client = given
        self._owned = given is None
        self._timeout = timeout

    def get(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = http_client(trusted_peer=True, timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._owned:
            await self._client.aclose()
            self._client = None


def http_client(*, trusted_peer: bool, timeout: float, trust_env: bool = True) -> httpx2.AsyncClient:
    """An `httpx2.AsyncClient` that never follows redirects, traced when tracing is on (see
    `TracingTransport` for what `trusted_peer` decides). Every client the project makes to another
    service is made here."""
    tracer = active_tracer()
    if tracer is None:
        return httpx2.AsyncClient(trust_env=trust_env, timeout=timeout, follow_redirects=False)
    transport = TracingTransport(
        httpx2.AsyncHTTPTransport(trust_env=trust_env), tracer=tracer, trusted_peer=trusted_peer
    )
    return httpx2.AsyncClient(
        trust_env=trust_env, timeout=timeout, follow_redirects=False, transport=transport
    )


# --- token validation -----------------------------------------------------------------------------


class TracedValidator:
    """A TokenValidator wrapped in an INTERNAL span, `validate token`.

    Attributes: `mcpref.auth.validator` (which validators answer: `store`, `introspection`,
    `jwt`, `api_key`...) and `mcpref.auth.outcome` (`valid`, or the reason: `expired`,
    `unknown`, `refused`, `unavailable`...). A rejected token is an answer, not an error; an
    authorization server that cannot answer is (`error.type`). Never the token, its digest, the
    subject or a claim.
    """

    def __init__(self, inner: TokenValidator, *, tracer: Tracer, kind: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._kind = kind

    @property
    def inner(self) -> TokenValidator:
        return self._inner

    async def validate(self, token: str) -> Principal:
        with self._tracer.start_as_current_span(
            "validate token",
            attributes={"mcpref.auth.validator": self._kind},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                principal = await self._inner.validate(token)
            except TokenRejected as rejected:
                span.set_attribute("mcpref.auth.outcome", rejected.reason)
                raise
            except LookupRefused:
                span.set_attribute("mcpref.auth.outcome", "refused")
                raise
            except ValidatorUnavailable:
                span.set_attributes({"mcpref.auth.outcome": "unavailable", "error.type": "unavailable"})
                span.set_status(StatusCode.ERROR)
                raise
            except Exception as exc:
                span.set_attributes(
                    {"mcpref.auth.outcome": "unavailable", "error.type": type(exc).__qualname__}
                )
                span.set_status(StatusCode.ERROR)
                raise
            span.set_attribute("mcpref.auth.outcome", "valid")
            return principal

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()
