"""2025-11-25 requests that need no stream are answered with one JSON body (MCP_JSON_RESPONSES).

On the 2025-11-25 wire the SDK answers every POSTed request with an SSE stream: a response with
its own task group, an sse-starlette writer task and a memory stream per request, so that the
server can send log and progress notifications, sampling, elicitation and roots requests tied to
the request before its result. That machinery made a 2025-11-25 `tools/call` cost about twice a
2026-07-28 one (docs/performance.md). The transport spec lets the server pick either
`text/event-stream` or `application/json` for each request (the client must accept both), and
the SDK can answer with JSON (its `json_response` mode), but only for a whole transport, which
would take the stream away from the tools that use it.

So the choice is made per request, before the SDK sees it:

- JSON for requests whose handler cannot send anything before its result: `ping`, the `*/list`
  methods, and `tools/call` of a tool with no way to reach the client (no Context to log, report
  progress or ask with, and no parameter the SDK fills by asking the client, `Resolve(...)`), or
  that its author registered with `Tools.add(..., quiet=True)` (it takes a Context only to read
  the caller): `Tools.answers_only`;
- an SSE stream, as before, for everything else: `initialize`, tools that take a Context or
  resolve parameters from the client, task tools, prompts, resources, completions, batches,
  unknown tools and methods.

A JSON answer carries no event id, so that one response cannot be resumed with `Last-Event-ID`
after a broken connection (the client sends the request again); everything that can stream keeps
its resumable SSE stream. Both revisions' conformance suites run against this (`make test`).

How, without forking the SDK: the SDK's transport reads its `is_json_response_enabled` flag
where it handles each POST; `PerRequestTransport` makes that flag a property that reads a
ContextVar, which `JsonResponseChoice` sets for the task serving one request (a stateful session
serves concurrent requests, each in its own task, so each sees its own choice). The flag keeps
its SDK meaning (`can_send_request` is False for a JSON answer: a server-to-client request from a
`quiet=True` tool fails at once instead of hanging, and its notifications are dropped).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, Final

from mcp.server.streamable_http import StreamableHTTPServerTransport, check_accept_headers
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.protection._asgi import JSONRPC_MESSAGE_STATE_KEY, BufferedBody
from shared import untrusted_json

MAX_BODY_BYTES: Final = 4 * 1024 * 1024  # the SDK's own limit for Streamable HTTP bodies
# Methods whose handlers only answer: nothing can be sent on their stream.
ANSWER_ONLY_METHODS: Final = frozenset(
    {"ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list"}
)
_PROTOCOL_VERSION_HEADER: Final = b"mcp-protocol-version"

_answer_as_json: contextvars.ContextVar[bool] = contextvars.ContextVar("mcpref_answer_as_json", default=False)


def answering_as_json() -> bool:
    """Whether the request this task serves is answered with one JSON body."""
    return _answer_as_json.get()


class PerRequestTransport(StreamableHTTPServerTransport):
    """The SDK's 2025-11-25 session transport, answering JSON or SSE as chosen per request."""

    @property  # the SDK's attribute, read per request here
    def is_json_response_enabled(self) -> bool:
        return _answer_as_json.get()

    @is_json_response_enabled.setter
    def is_json_response_enabled(self, value: bool) -> None:
        if value:
            raise ValueError("JSON answers are chosen per request (mcp_server/responses.py)")


AnswersOnly = Callable[[str], bool]
"""Whether a call of the tool `name` can send nothing but its result (`Tools.answers_only`)."""


class JsonResponseChoice:
    """ASGI middleware in front of the session manager: marks the requests answered as JSON."""

    def __init__(self, app: ASGIApp, *, answers_only: AnswersOnly) -> None:
        self.app = app
        self._answers_only = answers_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _handshake_era(scope):
            await self.app(scope, receive, send)
            return
        message = scope.get("state", {}).get(JSONRPC_MESSAGE_STATE_KEY, _UNREAD)
        if message is _UNREAD:  # no scope check ran (AUTH_MODE=none): read the body here
            buffered = BufferedBody(receive)
            body = await buffered.read(MAX_BODY_BYTES)
            receive = buffered.receive
            message = _parse(body)
        if not self.needs_no_stream(message) or not _accepts_both(scope):
            await self.app(scope, receive, send)
            return
        token = _answer_as_json.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _answer_as_json.reset(token)

    def needs_no_stream(self, message: Any) -> bool:
        """True when nothing but the response can be sent for `message` (one JSON-RPC request)."""
        if not isinstance(message, dict) or "id" not in message:
            return False  # a batch, a notification or a response: the SDK answers as it does
        method = message.get("method")
        if method in ANSWER_ONLY_METHODS:
            return True
        if method != "tools/call":
            return False
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        return isinstance(name, str) and self._answers_only(name)


_UNREAD: Final = object()


def _parse(body: bytes | None) -> Any:
    if body is None:
        return None
    try:
        return untrusted_json.parse(
            body, max_bytes=MAX_BODY_BYTES, max_depth=untrusted_json.NATIVE_DEPTH_LIMIT
        )
    except untrusted_json.UntrustedJsonError:
        return None


def _handshake_era(scope: Scope) -> bool:
    """The SDK's own routing: no MCP-Protocol-Version header, or a handshake (2025) revision."""
    for name, value in scope["headers"]:
        if name == _PROTOCOL_VERSION_HEADER:
            return value.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
    return True


def _accepts_both(scope: Scope) -> bool:
    """A JSON answer only to a client that accepts the SSE stream too, as the spec requires of it:
    a client that does not is refused (406) by the SDK exactly as before."""
    has_json, has_sse = check_accept_headers(Request(scope))
    return has_json and has_sse
