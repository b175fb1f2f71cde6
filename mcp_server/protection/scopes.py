"""Which scopes each MCP operation needs, and the 403 that asks for them (step-up).

The scopes themselves (names, meanings, `notes:write` implies `notes:read`) are the catalogue in
`shared.scopes`; this module maps JSON-RPC methods onto them:

| method                                           | needs                     |
|--------------------------------------------------|---------------------------|
| initialize, ping, notifications/*, logging/*,    | nothing beyond a valid    |
| server/discover, responses, anything unknown     | token                     |
| tools/list                                       | mcp:tools:read            |
| tools/call                                       | the tool's scopes (default mcp:tools:read) |
| resources/* (list, read, templates, subscribe)   | mcp:resources:read        |
| subscriptions/listen with resource subscriptions | mcp:resources:read        |
| prompts/*, completion/complete                   | mcp:prompts:read          |
| tasks/get, tasks/update, tasks/cancel            | the task's tool's scopes  |

A task method needs the scopes of the tool the task runs (`extra_scopes`: looked up in the
store, and only for a task the caller owns), so a token that lost a scope cannot read a result
it could no longer produce.

A tool declares its scopes where it is registered (`mcp_server.features.kit.Tools`), which
this module asks by tool name:

    @tools.add(scopes=[NOTES_WRITE], annotations=WRITES)
    async def notes_add(...): ...

A request lacking a scope gets 403 `Bearer error="insufficient_scope", scope="..."` where `scope`
names every scope the operation needs plus every scope the token already holds, in one challenge
(MCP 2026-07-28 "Server Scope Management"): the client re-authorizes once with that set and does
not lose what it had. Hierarchy is honoured through `CATALOGUE.expand`.

The JSON-RPC body is authoritative (the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers are only
hints and the SDK rejects a mismatch with -32020 afterwards); it is read once, bounded, and replayed.
A body this check cannot parse (`shared.untrusted_json`) is refused here with a JSON-RPC parse
error, never passed on unchecked: the SDK parses with other parsers (json, pydantic-core), and
anything one of them accepted that this check could not read would otherwise skip the scope check.

tools/list is NOT filtered by scope: every tool is listed to every token with mcp:tools:read.
Hiding tools would break step-up (a client cannot ask for `notes:write` to call a tool it never
saw), make the list differ per token although 2026-07-28 lets clients and intermediaries cache
it (`tools/list` is a cacheable method) and `listChanged` is not sent when a token changes, and it
would buy no security: the call itself is what is checked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mcp_types import PARSE_ERROR
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.protection._asgi import JSONRPC_MESSAGE_STATE_KEY, BufferedBody, CannedResponse, jsonrpc_error
from mcp_server.protection.middleware import PRINCIPAL_STATE_KEY, SCHEME_STATE_KEY
from shared import untrusted_json
from shared.scopes import CATALOGUE, PROMPTS_READ, RESOURCES_READ, TOOLS_READ
from shared.validation import Principal

logger = logging.getLogger(__name__)

ToolScopeLookup = Callable[[str], frozenset[str] | None]
"""The scopes a tool declared, by tool name; None when it declared none."""


@dataclass(frozen=True)
class ExtraScopes:
    """Scopes some methods need that depend on stored state (a task's tool), for this principal.
    Only messages of `methods` are looked up: the hot path (tools/call) pays nothing."""

    methods: frozenset[str]
    lookup: Callable[[Principal, Mapping[str, Any]], Awaitable[frozenset[str]]]


MAX_BODY_BYTES: Final = 4 * 1024 * 1024  # the SDK's own limit for Streamable HTTP bodies
DEFAULT_TOOL_SCOPES: Final = frozenset({TOOLS_READ})
_NONE: Final[frozenset[str]] = frozenset()
_METHOD_SCOPES: Final[dict[str, frozenset[str]]] = {
    "tools/list": frozenset({TOOLS_READ}),
    "completion/complete": frozenset({PROMPTS_READ}),
}
_PREFIX_SCOPES: Final = (
    ("resources/", frozenset({RESOURCES_READ})),
    ("prompts/", frozenset({PROMPTS_READ})),
    ("tools/", frozenset({TOOLS_READ})),
)


class ScopePolicy:
    """Maps a decoded JSON-RPC message (or a batch) to the scopes it needs."""

    def __init__(self, tool_scopes: ToolScopeLookup) -> None:
        self._tool_scopes = tool_scopes

    def required(self, message: Any) -> frozenset[str]:
        if isinstance(message, list):
            needed: set[str] = set()
            for item in message:
                needed |= self._required_one(item)
            return frozenset(needed)
        return self._required_one(message)

    def _required_one(self, message: Any) -> frozenset[str]:
        if not isinstance(message, dict):
            return _NONE
        method = message.get("method")
        if not isinstance(method, str):
            return _NONE  # a response to a server request (sampling, elicitation)
        params = message.get("params")
        params = params if isinstance(params, Mapping) else {}
        if method == "tools/call":
            name = params.get("name")
            declared = self._tool_scopes(name) if isinstance(name, str) else None
            return declared if declared is not None else DEFAULT_TOOL_SCOPES
        if method == "subscriptions/listen":
            wanted = params.get("notifications")
            if isinstance(wanted, Mapping) and wanted.get("resourceSubscriptions"):
                return frozenset({RESOURCES_READ})
            return _NONE
        exact = _METHOD_SCOPES.get(method)
        if exact is not None:
            return exact
        for prefix, scopes in _PREFIX_SCOPES:
            if method.startswith(prefix):
                return scopes
        return _NONE


def challenge_scope(needed: Iterable[str], held: Iterable[str]) -> str:
    """Everything the operation needs plus what the token holds, in catalogue order."""
    return " ".join(CATALOGUE.ordered({*needed, *held}))


class ScopeCheck:
    """ASGI middleware after `BearerAuth`: 403 insufficient_scope, or replay the body downstream."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: ScopePolicy,
        resource_metadata_url: str,
        extra_scopes: ExtraScopes | None = None,
    ) -> None:
        self.app = app
        self._policy = policy
        self._extra_scopes = extra_scopes
        self._metadata = resource_metadata_url
        self._too_large = CannedResponse(413, jsonrpc_error("Request body too large"))
        self._unparseable = CannedResponse(400, jsonrpc_error("Parse error", code=PARSE_ERROR))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY) if scope["type"] == "http" else None
        if not isinstance(principal, Principal) or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        buffered = BufferedBody(receive)
        body = await buffered.read(MAX_BODY_BYTES)
        if body is None:
            await self._too_large.send(send)
            return
        try:
            message = untrusted_json.parse(
                body, max_bytes=MAX_BODY_BYTES, max_depth=untrusted_json.NATIVE_DEPTH_LIMIT
            )
        except untrusted_json.UntrustedJsonError:
            await self._unparseable.send(send)
            return
        needed = self._policy.required(message)
        extra = self._extra_scopes
        if extra is not None and isinstance(message, dict) and message.get("method") in extra.methods:
            needed |= await extra.lookup(principal, message)
        if needed and not needed <= CATALOGUE.expand(principal.scopes):
            # The challenge is in the scheme the request authenticated with (RFC 9449 section 7.1).
            scheme = scope["state"].get(SCHEME_STATE_KEY, "Bearer")
            await self._forbidden(needed, principal, scheme).send(send)
            return
        scope["state"][JSONRPC_MESSAGE_STATE_KEY] = message
        await self.app(scope, buffered.receive, send)

    def _forbidden(
        self, needed: frozenset[str], principal: Principal, scheme: str = "Bearer"
    ) -> CannedResponse:
        missing = " ".join(sorted(needed - CATALOGUE.expand(principal.scopes)))
        scope_value = challenge_scope(needed, principal.scopes)
        description = f"This operation needs the scope(s): {missing}"
        logger.info("insufficient scope for %s: missing %s", principal.subject, missing)
        return CannedResponse(
            403,
            {"error": "insufficient_scope", "error_description": description, "scope": scope_value},
            [
                (
                    "WWW-Authenticate",
                    f'{scheme} error="insufficient_scope", scope="{scope_value}", '
                    f'resource_metadata="{self._metadata}", error_description="{description}"',
                )
            ],
        )
