"""Attacks through tracing: what a client can make us log, export, or send on.

Real server processes (tests/e2e/servers.py), tracing on (exporting to the real OTLP receiver of
tests/fixtures/otlp_receiver.py) or off (no OTEL_* variable at all); a client speaking raw HTTP.

- W3C trace context is client input, in headers and (SEP-414) in every request's `_meta`: the
  OpenTelemetry propagators warn about malformed or oversized values, quoting them, and the MCP
  SDK extracts `_meta` whether or not tracing is on. None of it may reach our logs, and a request
  carrying it is served as any other.
- A tool or prompt name, a JSON-RPC id: megabytes if the client likes, and the MCP SDK puts them
  in span names, attributes and status messages. The exported spans stay small.
- Trace context and baggage go to the authorization server we are configured with, never to a
  host a client chose: a client ID metadata document URL is fetched without them.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.oauth_flow import LEGACY_VERSION, http, initialize, mint
from tests.e2e.servers import Deployment, build_deployment
from tests.e2e.test_tracing import MODERN, modern_call, new_ids
from tests.fixtures.otlp_receiver import OtlpReceiver, ReceivedSpan, exporting_to, otlp_receiver
from tests.security.document_host import DocumentHost

__all__ = ["otlp_receiver"]

MARKER = f"hostile{uuid.uuid4().hex[:12]}"


def start(name: str, tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Deployment:
    workdir = Path(tmp_path_factory.mktemp(name))
    return build_deployment("internal", "memory", workdir, env={"CIMD_ALLOW_LOOPBACK": "true", **env}).start()


@pytest.fixture(scope="module")
def traced(otlp_receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = start("traced", tmp_path_factory, exporting_to(otlp_receiver))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def untraced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = start("untraced", tmp_path_factory, {})  # no OTEL_* variable at all
    try:
        yield deployment
    finally:
        deployment.stop()


BOTH = pytest.mark.parametrize("which", ["traced", "untraced"])


def hostile_context() -> dict[str, str]:
    """Every way a W3C propagator can be unhappy, each quoting MARKER."""
    return {
        "traceparent": f"00-{MARKER}-{'ab' * 400}-01",
        "tracestate": ",".join(f"{MARKER}{i}=bad value {MARKER}" for i in range(40)),
        "baggage": f"{MARKER}-no-equals," + "x" * 9000 + MARKER,
    }


@BOTH
def test_hostile_trace_context_in_headers_and_meta_is_ignored_and_never_reaches_the_logs(
    which: str, request: pytest.FixtureRequest
) -> None:
    deployment: Deployment = request.getfixturevalue(which)
    token = mint(deployment.mcp_url).tokens.access_token
    # In the headers, and in `_meta`, where the MCP SDK extracts it even with tracing off.
    hostile = hostile_context()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "whoami",
            "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                **hostile,
            },
        },
    }
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "whoami",
        **{name: value[:4000] for name, value in hostile.items()},  # a header line has limits
    }
    with http() as client:
        for tracestate_split in (False, True):
            sent = dict(headers)
            if tracestate_split:  # the same in a valid traceparent's company
                sent["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
            response = client.post(deployment.mcp_url, json=body, headers=sent)
            assert response.status_code == 200, response.text
            assert '"subject": "demo"' in response.text or '"subject":"demo"' in response.text

    logs = deployment.logs()
    assert MARKER not in logs, [line for line in logs.splitlines() if MARKER in line][:3]


def test_a_megabyte_tool_name_prompt_name_and_request_id_make_spans_as_small_as_anyones(
    traced: Deployment, otlp_receiver: OtlpReceiver
) -> None:
    token = mint(traced.mcp_url).tokens.access_token
    session = initialize(traced.mcp_url, token)
    assert session.status_code == 200, session.text
    huge = MARKER + "x" * 1_000_000
    trace_id, caller = new_ids()
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": LEGACY_VERSION,
        "mcp-session-id": session.headers["mcp-session-id"],
        "traceparent": f"00-{trace_id}-{caller}-01",
    }
    with http() as client:
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert client.post(traced.mcp_url, json=initialized, headers=headers).status_code == 202
        for method, params in (
            ("tools/call", {"name": huge, "arguments": {}}),
            ("prompts/get", {"name": huge}),
        ):
            body = {"jsonrpc": "2.0", "id": huge, "method": method, "params": params}
            response = client.post(traced.mcp_url, content=json.dumps(body), headers=headers)
            assert response.status_code == 200, response.text[:300]

    def arrived(spans: list[ReceivedSpan]) -> bool:
        return {"tools/call", "prompts/get"} <= {
            s.attributes.get("mcp.method.name") for s in spans if s.trace_id == trace_id
        }

    hostile = [
        s
        for s in otlp_receiver.wait_for(arrived, "the hostile requests' MCP spans")
        if s.trace_id == trace_id
    ]
    for span in hostile:
        assert len(span.name) <= 128, span
        assert len(span.status_message) <= 256, span
        for key, value in span.attributes.items():
            assert len(str(value)) <= 256, (span, key)
    # An unknown tool's span is named by its method alone: no client text as a span name.
    (tool_call,) = [s for s in hostile if s.attributes.get("mcp.method.name") == "tools/call"]
    assert tool_call.name == "tools/call"
    assert tool_call.attributes["gen_ai.tool.name"] == "_OTHER"
    (prompt,) = [s for s in hostile if s.attributes.get("mcp.method.name") == "prompts/get"]
    assert prompt.status == "ERROR"  # the SDK's unknown-prompt error, its message cut short
    raw_trace_id = bytes.fromhex(trace_id)
    assert sum(len(body) for body in otlp_receiver.bodies if raw_trace_id in body) < 64_000


@BOTH
def test_trace_context_and_baggage_are_never_sent_to_a_client_metadata_document_host(
    which: str, request: pytest.FixtureRequest, document_host: DocumentHost, otlp_receiver: OtlpReceiver
) -> None:
    deployment: Deployment = request.getfixturevalue(which)
    document = document_host.client_document()
    trace_id, caller = new_ids()
    query = {
        "response_type": "code",
        "client_id": document,
        "redirect_uri": "http://127.0.0.1:53124/callback",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "state": "s",
        "resource": deployment.mcp_url,
    }
    with http() as client:
        response = client.get(
            f"{deployment.issuer}/authorize",
            params=query,
            headers={"traceparent": f"00-{trace_id}-{caller}-01", "baggage": f"secret={MARKER}"},
        )
    assert response.status_code in (200, 302, 303), response.text
    assert document_host.hits(document) == 1
    (fetch,) = document_host.headers(document)
    assert not {"traceparent", "tracestate", "baggage"} & set(fetch), fetch
    assert MARKER not in json.dumps(fetch)
    if which == "traced":  # the fetch is still traced, on our side
        spans = otlp_receiver.trace(trace_id, "GET /authorize", "GET")
        (outbound,) = [s for s in spans if s.kind == "CLIENT"]
        assert outbound.name == "GET"
        assert "url.full" not in outbound.attributes  # the client's URL is not recorded


def test_a_traceparent_makes_no_span_at_a_server_without_otel_variables(
    traced: Deployment, untraced: Deployment, otlp_receiver: OtlpReceiver
) -> None:
    """The same sampled trace context sent to both servers (which share the receiver): only the
    one configured to export does; whatever a request carries cannot switch tracing on."""
    trace_id, caller = new_ids()
    for deployment in (untraced, traced):
        token = mint(deployment.mcp_url).tokens.access_token
        modern_call(deployment, token, "whoami", {"traceparent": f"00-{trace_id}-{caller}-01"})
    spans = otlp_receiver.trace(trace_id, "POST /mcp", "execute_tool whoami")
    ports = {
        s.attributes["server.port"] for s in spans if "server.port" in s.attributes and s.kind == "SERVER"
    }
    assert ports == {traced.mcp_port}
