"""Prometheus metrics for every process, served at `/metrics` (docs/operations.md lists them).

Metrics are module-level, as is idiomatic for prometheus-client: each process (one MCP server
instance, or the standalone auth server) has one registry, and Prometheus scrapes every instance.
The default registry also carries the client library's `process_*` (memory, CPU, open files)
and `python_gc_*` series.

Kept cheap on the hot path: every label value comes from a closed set (routes the app declares,
HTTP methods, status codes, failure reasons, grant types), so no request can create a new series,
and label children are resolved once and cached, so a request costs a dict lookup and a couple
of locked increments, not a `labels()` call. The introspection and tenant caches are not counted
here at all: they keep plain integer counters and a collector reads them at scrape time.

Several workers on one port (WEB_CONCURRENCY, shared/runtime.py): whichever worker accepts a
scrape answers it, so each worker's own numbers would make every counter jump between scrapes.
The supervisor points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start;
prometheus-client then keeps every counter and histogram value in a file per worker, and
/metrics sums the files of all workers (`MultiProcessCollector`), dead ones included, so totals
never go back. The plain integers of the caches are written into those files too
(`publish_scraped`), every `PUBLISH_SECONDS` and at each scrape: counters by their increase,
gauges as they stand (summed over live workers). The per-process `process_*` and `python_gc_*`
series have no sum and are left out in that mode.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.oauth import GRANT_TYPES
from shared.settings import Settings, is_loopback_host

METRICS_PATH = "/metrics"
OTHER = "other"
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's variable
PUBLISH_SECONDS = 5.0  # several workers: how stale another worker's cache counters may be


def multiprocess() -> bool:
    """Whether this process is one of several workers whose metrics are summed (see above)."""
    return bool(os.environ.get(MULTIPROCESS_DIRECTORY))


# Seconds; an authenticated tools/call takes ~1 ms here, a slow tool or an SSE stream far longer.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
VALIDATION_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0)

HTTP_REQUESTS = Counter(
    "mcpref_http_requests_total",
    "HTTP requests answered, by route, method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "mcpref_http_request_duration_seconds",
    "Time from request to the end of the response (SSE streams: until they close), by route and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter(
    "mcpref_auth_failures_total",
    "Requests to the MCP endpoints refused by authentication, by reason",
    ["reason"],
)
VALIDATION_DURATION = Histogram(
    "mcpref_token_validation_duration_seconds",
    "Time the MCP server spends validating one bearer credential (cache hits included)",
    buckets=VALIDATION_BUCKETS,
)
TOKENS_ISSUED = Counter("mcpref_tokens_issued_total", "Access tokens issued, by grant type", ["grant_type"])
AUDIT_EVENTS = Counter(
    "mcpref_audit_events_total", "Security events written to the audit log, by event", ["event"]
)
PASSWORD_HASHES = Counter(
    "mcpref_password_hashes_total",
    "Password hashes computed at sign-in (known and unknown names alike), by scheme and parameters",
    ["scheme", "parameters"],
)

_METHODS = frozenset({"GET", "POST", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH"})
# Why the bearer middleware refused a request: its own reasons plus the validators' FailureReason.
AUTH_FAILURE_REASONS = (
    "missing",  # no credentials (the 401 without error=)
    "malformed_request",  # two credentials, a token in the body, a malformed Authorization header
    "unavailable",  # the validator could not decide (AS, JWKS or store unreachable): 503
    "unknown_token_limit",  # UNKNOWN_TOKENS_PER_MINUTE used up by this address: 429, the AS not asked
    "malformed",
    "unknown",
    "expired",
    "revoked",
    "wrong_audience",
    "wrong_issuer",
    "bad_signature",
    "not_an_access_token",
    "unsupported_binding",
    "invalid_dpop_proof",  # a DPoP proof that fails RFC 9449 section 4.3, or a replayed one
    "use_dpop_nonce",  # a DPoP proof without a current nonce (DPOP_NONCE=required)
    "dpop_required",  # a Bearer token where DPoP is required (DPOP_REQUIRED), or a bound token sent as Bearer
    "not_bound",  # a bearer token sent with the DPoP scheme
)
_AUTH_FAILURE_CHILDREN = {reason: AUTH_FAILURES.labels(reason=reason) for reason in AUTH_FAILURE_REASONS}
_TOKEN_CHILDREN = {grant: TOKENS_ISSUED.labels(grant_type=grant) for grant in (*GRANT_TYPES, OTHER)}


def auth_failure(reason: str) -> None:
    """Count one refused request; an unforeseen reason is counted as `other`, never a new series."""
    child = _AUTH_FAILURE_CHILDREN.get(reason)
    if child is None:
        child = _AUTH_FAILURE_CHILDREN.setdefault(OTHER, AUTH_FAILURES.labels(reason=OTHER))
    child.inc()


def observe_validation(seconds: float) -> None:
    VALIDATION_DURATION.observe(seconds)


def token_issued(grant_type: str | None) -> None:
    child = _TOKEN_CHILDREN.get(grant_type or OTHER) or _TOKEN_CHILDREN[OTHER]
    child.inc()


def password_hashed(scheme: str, parameters: str) -> None:
    """Count one password hash computation. The labels come from configured hashes only (an
    unknown name is checked against a decoy with a configured hash's parameters): bounded."""
    PASSWORD_HASHES.labels(scheme=scheme, parameters=parameters).inc()


_audit_children: dict[str, Any] = {}


def audit_event(event: str) -> None:
    """Count one audit event (the event names are a closed Literal in auth_server.audit)."""
    child = _audit_children.get(event)
    if child is None:
        child = _audit_children.setdefault(event, AUDIT_EVENTS.labels(event=event))
    child.inc()


# --- HTTP requests ----------------------------------------------------------------------------


class HttpMetricsMiddleware:
    """ASGI middleware counting every HTTP request by route, method and status, and timing it.

    `routes` are the paths the app serves; any other path is labelled `other`, so scanners
    probing random URLs cannot grow the number of series.
    """

    def __init__(self, app: ASGIApp, routes: Iterable[str]) -> None:
        self.app = app
        self._routes = frozenset(routes)
        self._durations: dict[tuple[str, str], Any] = {}
        self._counts: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self._routes else OTHER
        method = scope["method"] if scope["method"] in _METHODS else OTHER
        status = 500  # what the client gets if the app raises before it answers
        start = time.perf_counter()

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self._observe(route, method, status, time.perf_counter() - start)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        count = self._counts.get((route, method, status))
        if count is None:
            count = HTTP_REQUESTS.labels(route=route, method=method, status=str(status))
            self._counts[(route, method, status)] = count
        count.inc()
        duration = self._durations.get((route, method))
        if duration is None:
            duration = HTTP_DURATION.labels(route=route, method=method)
            self._durations[(route, method)] = duration
        duration.observe(seconds)


def route_paths(routes: Iterable[BaseRoute]) -> list[str]:
    return [route.path for route in routes if isinstance(route, Route)]


# --- caches whose counters are read at scrape time ------------------------------------------


class _ScrapedCounters(Collector):
    """Families summed over weakly held objects' plain integer attributes, read only when
    Prometheus scrapes (the objects count with `+= 1`, nothing else on the hot path). Objects
    are held weakly: tests build many apps per process."""

    def __init__(self, families: Iterable[tuple[str, str, str, str]]) -> None:
        self.watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._families = tuple(families)  # (kind "counter" or "gauge", name, help, attribute)
        self._published: dict[str, int] = {}  # several workers: each counter's total when last written
        self._files: dict[str, Counter | Gauge] = {}  # ... and the metric writing it to this worker's file

    def publish(self) -> None:
        """Several workers: write this worker's totals where every worker's /metrics reads them."""
        watched = list(self.watched)
        for kind, name, documentation, attribute in self._families:
            value = sum(_read(obj, attribute) for obj in watched)
            metric = self._files.get(name)
            if metric is None:  # not registered: in this mode only the files are read
                metric = (
                    Counter(name, documentation, registry=None)
                    if kind == "counter"
                    else Gauge(name, documentation, registry=None, multiprocess_mode="livesum")
                )
                self._files[name] = metric
            if isinstance(metric, Gauge):
                metric.set(value)
                continue
            increase = value - self._published.get(name, 0)
            if increase > 0:
                metric.inc(increase)
            self._published[name] = value

    def describe(self) -> Iterable[Any]:
        return list(self._collect())

    def collect(self) -> Iterable[Any]:
        return list(self._collect())

    def _collect(self) -> Iterator[Any]:
        watched = list(self.watched)
        for kind, name, documentation, attribute in self._families:
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_type(name, documentation)
            family.add_metric([], sum(_read(obj, attribute) for obj in watched))
            yield family


def _read(obj: Any, attribute: str) -> int:
    value = len(obj) if attribute == "len" else getattr(obj, attribute, 0)
    return int(value)


class IntrospectionCounters(Protocol):
    """What `IntrospectionValidator` exposes: plain integers, read only at scrape time."""

    calls: int
    cache_hits: int
    cache_misses: int

    @property
    def cache_len(self) -> int: ...


_INTROSPECTION = _ScrapedCounters(
    [
        ("counter", "mcpref_introspection_cache_hits", "Tokens answered from the cache", "cache_hits"),
        (
            "counter",
            "mcpref_introspection_cache_misses",
            "Tokens not in the cache (introspected)",
            "cache_misses",
        ),
        ("counter", "mcpref_introspection_requests", "Introspection requests sent to the AS", "calls"),
        ("gauge", "mcpref_introspection_cache_entries", "Entries in the introspection cache", "cache_len"),
    ]
)
REGISTRY.register(_INTROSPECTION)


def watch_introspection(validator: IntrospectionCounters) -> None:
    """Export this validator's cache counters (weakly held: tests build many apps per process)."""
    _INTROSPECTION.watched.add(validator)


# --- per-request principal enrichment (the tenant cache) --------------------------------------

TENANT_LOOKUP_OUTCOMES = ("ok", "unavailable", "timeout", "error")
TENANT_LOOKUP_DURATION = Histogram(
    "mcpref_tenant_lookup_duration_seconds",
    "Time one tenant lookup took (cache misses only), by outcome: ok, unavailable (the lookup said "
    "so), timeout (TENANT_LOOKUP_TIMEOUT), error (it raised); every outcome but ok answered 503",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
_TENANT_LOOKUP_CHILDREN = {o: TENANT_LOOKUP_DURATION.labels(outcome=o) for o in TENANT_LOOKUP_OUTCOMES}


def tenant_lookup(outcome: str, seconds: float) -> None:
    _TENANT_LOOKUP_CHILDREN.get(outcome, _TENANT_LOOKUP_CHILDREN["error"]).observe(seconds)


class TenantCounters(Protocol):
    """What `TenantCache` exposes: plain integers, read only at scrape time."""

    hits: int
    misses: int
    invalidations: int

    def __len__(self) -> int: ...


_TENANTS = _ScrapedCounters(
    [
        ("counter", "mcpref_tenant_cache_hits", "Requests whose tenant came from the cache", "hits"),
        (
            "counter",
            "mcpref_tenant_cache_misses",
            "Tenant lookups started (concurrent ones share one)",
            "misses",
        ),
        (
            "counter",
            "mcpref_tenant_cache_invalidations",
            "Tenant records dropped because their principal's tokens were revoked",
            "invalidations",
        ),
        ("gauge", "mcpref_tenant_cache_entries", "Tenant records cached", "len"),
    ]
)
REGISTRY.register(_TENANTS)


def watch_tenants(cache: TenantCounters) -> None:
    """Export this tenant cache's counters (weakly held)."""
    _TENANTS.watched.add(cache)


# --- several workers -----------------------------------------------------------------------------


def publish_scraped() -> None:
    """Several workers: this worker's cache counters into the shared files (see above)."""
    _INTROSPECTION.publish()
    _TENANTS.publish()


async def keep_publishing(interval: float = PUBLISH_SECONDS) -> None:
    """Several workers: `publish_scraped` every `interval` seconds, and once more (and this worker's
    live gauges withdrawn) when cancelled at shutdown. Run as a task of the app's lifespan."""
    try:
        while True:
            await asyncio.sleep(interval)
            publish_scraped()
    finally:
        publish_scraped()
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # prometheus-client has no annotation here


# --- the endpoint -----------------------------------------------------------------------------


def metrics_routes(settings: Settings) -> list[BaseRoute]:
    """`GET /metrics`, or nothing when METRICS_ENABLED is false.

    Who may scrape: with METRICS_TOKEN set, whoever sends `Authorization: Bearer <METRICS_TOKEN>`
    (compared in constant time); without it, loopback clients only (a Prometheus or agent on the
    same host), everyone else gets 403. The address is the TCP peer unless FORWARDED_ALLOW_IPS
    names it as a proxy (shared/forwarded.py), so a reverse proxy on the same host must be listed
    there or must not forward /metrics; docs/operations.md.
    """
    if not settings.metrics_enabled:
        return []
    expected = f"Bearer {settings.metrics_token}".encode() if settings.metrics_token else None
    summed: CollectorRegistry | None = None
    if multiprocess():  # several workers: every worker's files, whichever worker answers
        summed = CollectorRegistry()
        MultiProcessCollector(summed)  # type: ignore[no-untyped-call]

    async def metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"error": "unauthorized", "error_description": "/metrics needs the METRICS_TOKEN bearer"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
                )
        elif request.client is None or not is_loopback_host(request.client.host):
            return JSONResponse(
                {"error": "forbidden", "error_description": "/metrics answers loopback clients only"},
                status_code=403,
            )
        if summed is not None:
            publish_scraped()
        body = generate_latest(summed if summed is not None else REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    return [Route(METRICS_PATH, metrics, methods=["GET"])]
