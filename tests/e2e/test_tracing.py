"""OpenTelemetry traces from the real server processes, received by a real OTLP/HTTP receiver.

Each deployment runs `python -m mcp_server` (and in external mode `python -m auth_server`) with
nothing but the standard OTEL_EXPORTER_OTLP_ENDPOINT pointing at tests/fixtures/otlp_receiver.py,
which decodes what arrives with opentelemetry-proto. Traffic is real: the OAuth flow over HTTP
(tests/e2e/oauth_flow.py), raw 2026-07-28 requests carrying W3C trace context in their headers,
and the MCP Python SDK's client, which puts the trace context in each request's `_meta`
(SEP-414). Internal mode, external mode with opaque tokens (introspection), and external mode
with JWTs (JWKS).
"""

from __future__ import annotations

import json
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from auth_server.users import hash_password
from tests.e2e.oauth_flow import MintedGrant, http, mint, refresh
from tests.e2e.servers import Deployment, build_deployment, clean_environ
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan, exporting_to, otlp_receiver
from tests.fixtures.tasks_client import TaskClient, reply

__all__ = ["otlp_receiver"]

MCP = "mcp-reference-server"
AS = "mcp-reference-auth-server"
USER = "tracer"
PASSWORD = f"pw-{secrets.token_urlsafe(18)}"
MODERN = "2026-07-28"

DEPLOYMENTS = [
    pytest.param(("internal", {}), id="internal"),
    pytest.param(("external", {}), id="external-introspection"),
    pytest.param(("external", {"TOKEN_FORMAT": "jwt"}), id="external-jwt"),
]


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def traced(
    request: pytest.FixtureRequest, otlp_receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    mode, extra = request.param
    env = {
        **exporting_to(otlp_receiver),
        "AUTH_USERS": json.dumps({USER: hash_password(PASSWORD, memory_kib=8192, time_cost=1)}),
        **extra,
    }
    workdir = Path(tmp_path_factory.mktemp(f"traced-{mode}"))
    deployment = build_deployment(mode, "memory", workdir, env=env).start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def grant(traced: Deployment) -> MintedGrant:
    return mint(traced.mcp_url, user=(USER, PASSWORD))


def new_ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def modern_call(
    deployment: Deployment, token: str, tool: str, headers: dict[str, str] | None = None, request_id: int = 7
) -> httpx2.Response:
    """One stateless 2026-07-28 tools/call, as a client without an MCP library sends it."""
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "trace-test", "version": "1"},
            },
        },
    }
    sent = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": tool,
        **(headers or {}),
    }
    with http() as client:
        response = client.post(deployment.mcp_url, json=body, headers=sent)
    assert response.status_code == 200, response.text
    return response


def one(spans: list[ReceivedSpan], **wanted: str) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, key) == value for key, value in wanted.items())]
    assert len(found) == 1, f"expected one span with {wanted}, found {found} among {spans}"
    return found[0]


def test_a_tool_call_is_one_trace_from_the_callers_traceparent_through_validation_to_the_tool(
    traced: Deployment, grant: MintedGrant, otlp_receiver: OtlpReceiver
) -> None:
    trace_id, caller_span = new_ids()
    modern_call(
        traced,
        grant.tokens.access_token,
        "whoami",
        {"traceparent": f"00-{trace_id}-{caller_span}-01", "baggage": "tenant=acme"},
    )
    external, jwt = traced.mode == "external", traced.env.get("TOKEN_FORMAT") == "jwt"
    endpoint = "/jwks" if jwt else "/introspect"
    method = "GET" if jwt else "POST"
    # HTTP server, validation, MCP server, tool; external: the call to the AS and the AS's span.
    wanted = {
        (MCP, "POST /mcp"),
        (MCP, "validate token"),
        (MCP, "tools/call whoami"),
        (MCP, "execute_tool whoami"),
    }
    if external:
        wanted |= {(MCP, f"{method} {endpoint}"), (AS, f"{method} {endpoint}")}

    def arrived(spans: list[ReceivedSpan]) -> bool:
        return wanted <= {(s.service, s.name) for s in spans if s.trace_id == trace_id}

    spans = [
        s for s in otlp_receiver.wait_for(arrived, f"{wanted} in trace {trace_id}") if s.trace_id == trace_id
    ]

    http_span = one(spans, name="POST /mcp", service=MCP)
    assert http_span.kind == "SERVER"
    assert http_span.parent_span_id == caller_span  # the caller's span is the parent
    assert http_span.attributes["http.request.method"] == "POST"
    assert http_span.attributes["http.route"] == "/mcp"
    assert http_span.attributes["http.response.status_code"] == 200
    assert http_span.attributes["client.address"] == "127.0.0.1"

    validation = one(spans, name="validate token")
    assert validation.parent_span_id == http_span.span_id
    assert validation.attributes["mcpref.auth.validator"] == traced.mode
    assert validation.attributes["mcpref.auth.outcome"] == "valid"

    mcp_span = one(spans, name="tools/call whoami")
    assert mcp_span.kind == "SERVER"
    assert mcp_span.parent_span_id == http_span.span_id  # no `_meta` context: the HTTP request's
    assert mcp_span.attributes["mcp.method.name"] == "tools/call"
    assert mcp_span.attributes["gen_ai.tool.name"] == "whoami"
    assert mcp_span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert mcp_span.attributes["jsonrpc.request.id"] == "7"
    assert mcp_span.attributes["mcp.protocol.version"] == MODERN
    assert mcp_span.attributes["network.transport"] == "tcp"
    assert "mcp.session.id" not in mcp_span.attributes  # 2026-07-28 has no sessions

    tool_span = one(spans, name="execute_tool whoami")
    assert tool_span.kind == "INTERNAL"
    assert tool_span.parent_span_id == mcp_span.span_id
    assert tool_span.attributes["gen_ai.tool.name"] == "whoami"
    assert tool_span.status == "UNSET"

    if not external:
        assert not [s for s in spans if s.kind == "CLIENT"], "internal mode validates in-process"
        return
    # External mode: the MCP server's call to the authorization server, and the AS's own span of
    # it, in the same trace: the traceparent crossed the hop.
    outbound = one(spans, name=f"{method} {endpoint}", service=MCP)
    assert outbound.kind == "CLIENT"
    assert outbound.parent_span_id == validation.span_id
    assert outbound.attributes["url.full"] == f"{traced.issuer}{endpoint}"
    assert outbound.attributes["http.response.status_code"] == 200
    served = one(spans, name=f"{method} {endpoint}", service=AS)
    assert served.kind == "SERVER"
    assert served.parent_span_id == outbound.span_id


async def test_a_tool_run_as_a_task_is_traced_where_it_runs_in_the_trace_that_started_it(
    traced: Deployment, grant: MintedGrant, otlp_receiver: OtlpReceiver
) -> None:
    """The tasks extension runs the tool's body in the background and answers the tools/call with a
    task handle at once: the `execute_tool` span (the kit's wrapper, where every tool runs) is still
    the MCP span's child, and ends after the request that started it did."""
    trace_id, caller_span = new_ids()
    async with httpx2.AsyncClient(trust_env=False, timeout=30) as http_client:
        tasks = TaskClient(http_client, traced.mcp_url, grant.tokens.access_token)
        params = {"name": "count_slowly", "arguments": {"to": 4, "seconds_per_step": 0.1}}
        response = await tasks.post(
            "tools/call", params, headers={"traceparent": f"00-{trace_id}-{caller_span}-01"}
        )
        created = reply(response)["result"]
        assert created["resultType"] == "task", created
        done = await tasks.finished(created["taskId"])
    assert done["status"] == "completed"

    spans = otlp_receiver.trace(trace_id, "POST /mcp", "tools/call count_slowly", "execute_tool count_slowly")
    request = one(spans, name="POST /mcp")
    mcp_span = one(spans, name="tools/call count_slowly")
    tool_span = one(spans, name="execute_tool count_slowly")
    assert tool_span.parent_span_id == mcp_span.span_id
    assert tool_span.end_ns > request.end_ns  # it went on after the client had its task handle
    assert tool_span.status == "UNSET"


def test_a_rejected_token_is_an_answer_in_the_validation_span_and_no_error(
    traced: Deployment, otlp_receiver: OtlpReceiver
) -> None:
    trace_id, caller_span = new_ids()
    with http() as client:
        response = client.post(
            traced.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "authorization": f"Bearer not-a-token-{uuid.uuid4().hex}",
                "traceparent": f"00-{trace_id}-{caller_span}-01",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": MODERN,
            },
        )
    assert response.status_code == 401
    spans = otlp_receiver.trace(trace_id, "POST /mcp", "validate token")
    http_span = one(spans, name="POST /mcp", service=MCP)
    assert http_span.attributes["http.response.status_code"] == 401
    assert http_span.status == "UNSET"  # a 4xx is the client's, not the server's, error
    validation = one(spans, name="validate token")
    assert validation.attributes["mcpref.auth.outcome"] in {"unknown", "malformed"}
    assert validation.status == "UNSET"


async def test_the_sdk_clients_meta_trace_context_parents_the_mcp_span_which_links_the_http_span(
    traced: Deployment, grant: MintedGrant, otlp_receiver: OtlpReceiver
) -> None:
    """SEP-414: the MCP Python SDK's client injects `traceparent` into each request's `_meta`;
    the server's MCP span takes it as parent and links the HTTP request's span (which has no
    trace context of its own here: the SDK does not add HTTP headers)."""
    trace_id, client_span = new_ids()
    sent: list[dict[str, Any]] = []
    session_ids: list[str] = []

    async def watch(request: httpx2.Request) -> None:
        if request.method == "POST":
            sent.append(json.loads(request.content))

    async def watch_response(response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            session_ids.append(response.headers["mcp-session-id"])

    caller = NonRecordingSpan(SpanContext(int(trace_id, 16), int(client_span, 16), False, TraceFlags(1)))
    headers = {"authorization": f"Bearer {grant.tokens.access_token}"}
    hooks = {"request": [watch], "response": [watch_response]}
    async with httpx2.AsyncClient(
        headers=headers, event_hooks=hooks, trust_env=False, timeout=30
    ) as http_client:
        with trace.use_span(caller):
            async with Client(
                streamable_http_client(traced.mcp_url, http_client=http_client), mode="legacy"
            ) as client:
                result = await client.call_tool("whoami", {})
    assert not result.is_error

    call = next(message for message in sent if message.get("method") == "tools/call")
    injected = call["params"]["_meta"]["traceparent"]
    assert injected.split("-")[1] == trace_id  # the SDK put our context in `_meta`
    parent = injected.split("-")[2]
    spans = otlp_receiver.trace(trace_id, "tools/call whoami", "execute_tool whoami")
    mcp_span = one(spans, name="tools/call whoami")
    assert mcp_span.parent_span_id == parent
    assert mcp_span.attributes["mcp.protocol.version"] == "2025-11-25"
    assert mcp_span.attributes["mcp.session.id"] == session_ids[0]
    one(spans, name="execute_tool whoami")
    # The HTTP span that carried it is in its own trace (no traceparent header), and linked.
    http_spans = otlp_receiver.wait_for(
        lambda spans: any(s.span_id == mcp_span.links[0][1] for s in spans) if mcp_span.links else False,
        "the linked HTTP span",
    )
    assert len(mcp_span.links) == 1
    linked = one(http_spans, span_id=mcp_span.links[0][1])
    assert linked.name == "POST /mcp"
    assert linked.trace_id != trace_id


def test_no_token_code_or_secret_ever_leaves_a_process_in_the_exported_spans(
    traced: Deployment, grant: MintedGrant, otlp_receiver: OtlpReceiver
) -> None:
    """Every credential the flow used, searched for in every byte the receiver was sent. The
    module's traffic ran the whole OAuth flow, tool calls, a rejected token; this test adds a
    refresh, a token sent in the query string, and the same token as an API-key-style header."""
    fresh = refresh(grant.discovery, grant.client, grant.tokens.refresh_token or "", traced.mcp_url)
    token = fresh.access_token
    trace_id, caller_span = new_ids()
    with http() as client:
        client.post(
            f"{traced.mcp_url}?access_token={token}",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "x-api-key": token},
        )
    modern_call(traced, token, "whoami")
    otlp_receiver.trace(trace_id, "POST /mcp")
    otlp_receiver.wait_for(
        lambda spans: any(s.name == "POST /token" for s in spans), "the token endpoint's span"
    )

    secrets_used = {
        "access token": grant.tokens.access_token,
        "refreshed access token": token,
        "refresh token": grant.tokens.refresh_token or "",
        "rotated refresh token": fresh.refresh_token or "",
        "authorization code": grant.authorization.code or "",
        "password": PASSWORD,
        "introspection secret": traced.introspection_client_secret,
    }
    exported = otlp_receiver.exported_bytes()
    assert len(exported) > 1000, "nothing to search: the servers exported nothing"
    for what, value in secrets_used.items():
        assert value, what
        assert value.encode() not in exported, f"the {what} was exported"
        assert value[:16].encode() not in exported, f"a prefix of the {what} was exported"


def test_health_probes_and_scrapes_make_no_spans(traced: Deployment, otlp_receiver: OtlpReceiver) -> None:
    trace_id, caller_span = new_ids()
    with http() as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            client.get(f"{traced.base_url}{path}", headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
        client.get(f"{traced.base_url}/.well-known/oauth-protected-resource/mcp")
    otlp_receiver.wait_for(
        lambda spans: any(s.name == "GET /.well-known/oauth-protected-resource/mcp" for s in spans),
        "the metadata request's span",
    )
    assert not [s for s in otlp_receiver.spans if s.trace_id == trace_id]
    assert not [s for s in otlp_receiver.spans if "healthz" in s.name or "metrics" in s.name]


def test_log_lines_written_inside_a_request_carry_its_trace_id(
    traced: Deployment, grant: MintedGrant, otlp_receiver: OtlpReceiver
) -> None:
    trace_id, caller_span = new_ids()
    modern_call(
        traced, grant.tokens.access_token, "whoami", {"traceparent": f"00-{trace_id}-{caller_span}-01"}
    )
    otlp_receiver.trace(trace_id, "POST /mcp", "execute_tool whoami")
    mcp_process = traced.processes[-1]
    lines = [json.loads(line) for line in mcp_process.log_path.read_text().splitlines() if trace_id in line]
    assert lines, mcp_process.log_tail()
    assert all(line["trace_id"] == trace_id and len(line["span_id"]) == 16 for line in lines)
    assert any(line["logger"] == "uvicorn.access" for line in lines)


async def test_the_stdio_transport_is_traced_too_with_the_pipe_transport(
    otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """`python -m mcp_server --transport stdio`, launched by the MCP Python SDK's stdio client as a
    desktop client would, exports its MCP and tool spans (nothing else: there is no HTTP)."""
    env = clean_environ({**exporting_to(otlp_receiver), "AUTH_MODE": "none", "SHOWCASE": "false"})
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "--transport", "stdio"], env=env, cwd=tmp_path
    )
    trace_id, client_span = new_ids()
    caller = NonRecordingSpan(SpanContext(int(trace_id, 16), int(client_span, 16), False, TraceFlags(1)))
    with trace.use_span(caller):
        async with Client(server, mode="legacy") as client:
            who = await client.call_tool("whoami", {})
    assert not who.is_error

    spans = otlp_receiver.trace(trace_id, "tools/call whoami", "execute_tool whoami")
    mcp_span = one(spans, name="tools/call whoami")
    assert mcp_span.attributes["network.transport"] == "pipe"
    assert "client.address" not in mcp_span.attributes
    assert one(spans, name="execute_tool whoami").parent_span_id == mcp_span.span_id
