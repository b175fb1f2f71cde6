"""shared/tracing.py and mcp_server/tracing.py, piece by piece.

The whole path (real processes exporting to a real OTLP receiver) is tests/e2e/test_tracing.py;
the attacks are tests/security/test_trace_context_attacks.py. Here each piece gets a tracer of its
own (an SDK TracerProvider with an in-memory exporter, never the process-wide one, so no other
test sees tracing on), and real HTTP where a peer is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.server.mcpserver import MCPServer
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_server.features import register_features
from mcp_server.features.kit import READ_ONLY, ToolError, Tools
from mcp_server.showcase import register_showcase
from shared import tracing
from shared.storage.memory import MemoryStore
from tests.e2e.servers import REPO_ROOT
from tests.fixtures.live_server import live_server

OTEL_VARIABLES = [name for name in os.environ if name.startswith("OTEL_")]


@pytest.fixture
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name)


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(tracing.bounded(SimpleSpanProcessor(exporter)))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


# --- configuration from the OTEL_* variables ------------------------------------------------------


def test_without_otel_variables_there_is_no_provider_and_no_exporter(no_otel_environment: None) -> None:
    assert tracing.traces_requested() is False
    assert tracing.tracer_provider_from_env("svc") is None


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_otlp_endpoint_variable_gives_a_provider_named_after_the_service(
    no_otel_environment: None, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:9/v1/traces")
    provider = tracing.tracer_provider_from_env("mcp-reference-server")
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "mcp-reference-server"
        assert provider.resource.attributes["service.version"]
    finally:
        provider.shutdown()


def test_otel_service_name_and_resource_attributes_win_over_our_default_name(
    no_otel_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "mcp-prod-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    provider = tracing.tracer_provider_from_env("mcp-reference-server")
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "mcp-prod-eu"
        assert provider.resource.attributes["deployment.environment"] == "prod"
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    ],
    ids=["sdk-disabled", "exporter-none"],
)
def test_the_standard_switches_turn_tracing_off(
    no_otel_environment: None, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert tracing.tracer_provider_from_env("svc") is None


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    no_otel_environment: None, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=named):
        tracing.traces_requested()


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    clean.update(env, PYTHONPATH=str(REPO_ROOT), AUTH_MODE="internal", REDIS_URL="")
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def what_the_app_runs(**env: str) -> dict[str, Any]:
    """Build the app and the MCP server in a fresh process (the tracer provider is process-wide):
    which OpenTelemetry SDK modules got imported, the app's middleware, the MCP server's."""
    done = run_python(
        "import json, sys\n"
        "from mcp_server.app import create_app\n"
        "from mcp_server.server import build_mcp_server\n"
        "from shared.settings import load_settings\n"
        "from shared.storage.memory import MemoryStore\n"
        "app = create_app(load_settings())\n"
        "server = build_mcp_server(load_settings(), MemoryStore())[0]\n"
        "print(json.dumps({'sdk': sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')),"
        " 'middleware': [m.cls.__name__ for m in app.user_middleware],"
        " 'mcp': [type(m).__name__ for m in server.middleware]}))\n",
        **env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


def test_an_app_built_without_otel_variables_loads_no_sdk_and_adds_nothing_to_the_request_path() -> None:
    report = what_the_app_runs()
    assert report["sdk"] == []
    assert "HttpTracingMiddleware" not in report["middleware"]
    assert "OpenTelemetryMiddleware" not in report["mcp"]  # the SDK's no-op spans are gone too
    assert "McpSpanDetails" not in report["mcp"]


def test_with_an_endpoint_the_app_is_traced_outermost_and_the_sdk_keeps_its_mcp_spans() -> None:
    report = what_the_app_runs(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert report["middleware"][0] == "HttpTracingMiddleware"
    assert report["mcp"][0] == "OpenTelemetryMiddleware"  # the SDK's MCP spans, outermost
    assert "McpSpanDetails" in report["mcp"]


def test_a_server_asked_for_grpc_stops_at_start_up_with_one_line_naming_the_variable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--port", "0"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "PYTHONPATH": str(REPO_ROOT),
            "AUTH_MODE": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in done.stderr
    assert "Traceback" not in done.stderr


# --- outbound HTTP: trace context to trusted peers only ------------------------------------------


@pytest.fixture(scope="module")
def echo_headers() -> Iterator[str]:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.headers))

    with live_server(lambda _: Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])) as url:
        yield url


async def call_through(
    tracer: trace.Tracer, url: str, *, trusted_peer: bool
) -> tuple[dict[str, str], trace.SpanContext]:
    transport = tracing.TracingTransport(
        httpx2.AsyncHTTPTransport(), tracer=tracer, trusted_peer=trusted_peer
    )
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("caller") as caller:
            async with httpx2.AsyncClient(transport=transport) as client:
                response = await client.get(url)
        return response.json(), caller.get_span_context()
    finally:
        context.detach(token)


async def test_a_trusted_peer_gets_the_traceparent_of_the_client_span_and_the_baggage(
    spans: tuple[trace.Tracer, InMemorySpanExporter], echo_headers: str
) -> None:
    tracer, exporter = spans
    headers, caller = await call_through(tracer, f"{echo_headers}/echo?token=x", trusted_peer=True)
    (client_span,) = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]
    assert headers["traceparent"].startswith(
        f"00-{trace.format_trace_id(caller.trace_id)}-{trace.format_span_id(client_span.context.span_id)}-"
    )
    assert headers["baggage"] == "tenant=acme"
    assert client_span.name == "GET /echo"
    assert client_span.attributes is not None
    assert client_span.attributes["url.full"] == f"{echo_headers}/echo"  # no query string
    assert client_span.attributes["http.response.status_code"] == 200


async def test_a_host_a_client_chose_gets_no_trace_context_and_its_url_is_not_recorded(
    spans: tuple[trace.Tracer, InMemorySpanExporter], echo_headers: str
) -> None:
    tracer, exporter = spans
    headers, _ = await call_through(tracer, f"{echo_headers}/echo", trusted_peer=False)
    assert not {"traceparent", "tracestate", "baggage"} & set(headers)
    (client_span,) = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]
    assert client_span.name == "GET"
    assert client_span.attributes is not None
    assert "url.full" not in client_span.attributes


async def test_an_unreachable_peer_is_an_error_span_with_the_exception_class(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    transport = tracing.TracingTransport(httpx2.AsyncHTTPTransport(), tracer=tracer, trusted_peer=True)
    async with httpx2.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx2.ConnectError):
            await client.get("http://127.0.0.1:9/introspect")
    (client_span,) = exporter.get_finished_spans()
    assert client_span.status.status_code is StatusCode.ERROR
    assert client_span.attributes is not None
    assert client_span.attributes["error.type"] == "ConnectError"


# --- tools: the execute_tool span, and nothing else changed -----------------------------------------


def served_tools(tracer: trace.Tracer | None) -> MCPServer:
    server: MCPServer = MCPServer("t")
    tools = Tools(server, tracer=tracer)
    register_features(tools, MemoryStore())
    register_showcase(server, tools)

    @tools.add(annotations=READ_ONLY)
    def shout(word: str) -> str:
        """Shout a word (a plain def: the SDK runs it in a worker thread)."""
        if not word:
            raise ToolError("say something")
        return word.upper()

    return server


async def test_tracing_wraps_every_tool_without_changing_what_clients_see(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, _ = spans
    plain, traced = served_tools(None), served_tools(tracer)
    async with Client(plain) as a, Client(traced) as b:
        listed_plain = [t.model_dump() for t in (await a.list_tools()).tools]
        listed_traced = [t.model_dump() for t in (await b.list_tools()).tools]
    assert listed_plain == listed_traced


async def test_each_tool_call_runs_in_an_execute_tool_span_sync_or_async_failing_or_not(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    async with Client(served_tools(tracer)) as client:
        assert (await client.call_tool("shout", {"word": "hi"})).is_error is False
        assert (await client.call_tool("shout", {"word": ""})).is_error is True
        assert (await client.call_tool("whoami", {})).is_error is False

    executed = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert [s.name for s in executed] == ["execute_tool shout", "execute_tool shout", "execute_tool whoami"]
    ok, failed, whoami = executed
    attributes: Any = ok.attributes
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "shout"
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "tool_error"
    assert not failed.events  # the message is the caller's to read, not ours to export
    assert (whoami.attributes or {})["gen_ai.tool.name"] == "whoami"


# --- bounds -----------------------------------------------------------------------------------------


def test_long_span_names_status_messages_and_stack_traces_are_cut_before_export(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    huge = "n" * 100_000
    with tracer.start_as_current_span("prompts/get " + huge) as span:
        span.set_status(StatusCode.ERROR, "Unknown prompt: " + huge)
        span.add_event(
            "exception",
            {
                "exception.message": huge,
                "exception.stacktrace": "Traceback\n" + huge + "\nValueError: at the end",
            },
        )
    (exported,) = exporter.get_finished_spans()
    assert len(exported.name) == tracing.SPAN_NAME_LIMIT
    assert exported.status.description is not None
    assert len(exported.status.description) == tracing.ATTRIBUTE_LENGTH_LIMIT
    event_attributes: Any = exported.events[0].attributes
    assert len(event_attributes["exception.message"]) == tracing.EVENT_ATTRIBUTE_LIMIT
    assert event_attributes["exception.stacktrace"].endswith("ValueError: at the end")
    assert exported.context.trace_id == span.get_span_context().trace_id
