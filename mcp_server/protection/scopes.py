"""Which scopes each MCP operation needs, and the 403 that asks for them (step-up).

The scope model itself (names, meanings, `notes:write` implies `notes:read`) lives in
`shared.scopes`; this module maps JSON-RPC methods onto it:

| method                                           | needs                     |
|--------------------------------------------------|---------------------------|
| initialize, ping, notifications/*, logging/*,    | nothing beyond a valid    |
| server/discover, responses, anything unknown     | token                     |
| tools/list                                       | mcp:tools:read            |
| tools/call                                       | the tool's declared scopes (default mcp:tools:read) |
| resources/* (list, read, templates, subscribe)   | mcp:resources:read        |
| subscriptions/listen with resource subscriptions | mcp:resources:read        |
| prompts/*, completion/complete                   | mcp:prompts:read          |

A tool declares its scopes in one line, next to its registration:

    @server.tool(annotations=WRITES)
    @requires_scopes(NOTES_WRITE)
    async def notes_add(...): ...

A request lacking a scope gets 403 `Bearer error="insufficient_scope", scope="..."` where `scope`
names every scope the operation needs plus every scope the token already holds, in one challenge
(MCP 2026-07-28 "Server Scope Management"): the client re-authorizes once with that set and does
not lose what it had. Hierarchy is honoured through `shared.scopes.expand`.

The JSON-RPC body is authoritative (the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers are only
hints and the SDK rejects a mismatch with -32020 afterwards); it is read once, bounded, and replayed.

tools/list is NOT filtered by scope: every tool is listed to every token with mcp:tools:read.
Hiding tools would break step-up (a client cannot ask for `notes:write` to call a tool it never
saw), make the list differ per token although 2026-07-28 lets clients and intermediaries cache
it (`tools/list` is a cacheable method) and `listChanged` is not sent when a token changes, and it
would buy no security: the call itself is what is checked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.protection._asgi import BufferedBody, CannedResponse, jsonrpc_error
from mcp_server.protection.middleware import PRINCIPAL_STATE_KEY
from shared.scopes import PROMPTS_READ, RESOURCES_READ, SUPPORTED_SCOPES, TOOLS_READ, expand
from shared.validation import Principal

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
ToolScopeLookup = Callable[[str], frozenset[str] | None]

_ATTRIBUTE: Final = "__mcp_required_scopes__"
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
_SCOPE_ORDER: Final = {scope: index for index, scope in enumerate(SUPPORTED_SCOPES)}


def requires_scopes(*scopes: str) -> Callable[[F], F]:
    """Declare the scopes a tool needs; place it directly under `@server.tool(...)`.

    It marks the function itself, so decorator order does not matter. Unknown scope names fail
    at import time rather than producing a challenge no authorization server can satisfy.
    """
    unknown = sorted(set(scopes) - set(SUPPORTED_SCOPES))
    if unknown or not scopes:
        raise ValueError(f"requires_scopes needs known scopes from shared.scopes; got {unknown or 'none'}")
    declared = frozenset(scopes)

    def mark(fn: F) -> F:
        setattr(fn, _ATTRIBUTE, declared)
        return fn

    return mark


def declared_scopes(fn: Callable[..., Any]) -> frozenset[str] | None:
    value = getattr(fn, _ATTRIBUTE, None)
    return value if isinstance(value, frozenset) else None


def tool_scope_lookup(server: MCPServer) -> ToolScopeLookup:
    """Look a tool's declared scopes up by name, at call time (tools may be added later)."""
    manager = server._tool_manager  # the SDK keeps registered tools (and their functions) here

    def lookup(name: str) -> frozenset[str] | None:
        tool = manager.get_tool(name)
        return declared_scopes(tool.fn) if tool is not None else None

    return lookup


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
    """Everything the operation needs plus what the token holds, in the model's order."""
    union = set(needed) | set(held)
    return " ".join(sorted(union, key=lambda scope: (_SCOPE_ORDER.get(scope, len(_SCOPE_ORDER)), scope)))


class ScopeCheck:
    """ASGI middleware after `BearerAuth`: 403 insufficient_scope, or replay the body downstream."""

    def __init__(self, app: ASGIApp, *, policy: ScopePolicy, resource_metadata_url: str) -> None:
        self.app = app
        self._policy = policy
        self._metadata = resource_metadata_url
        self._too_large = CannedResponse(413, jsonrpc_error("Request body too large"))

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
            message = json.loads(body)
        except (ValueError, RecursionError):
            message = None  # the SDK answers the parse error
        needed = self._policy.required(message)
        if needed and not needed <= expand(principal.scopes):
            await self._forbidden(needed, principal).send(send)
            return
        await self.app(scope, buffered.receive, send)

    def _forbidden(self, needed: frozenset[str], principal: Principal) -> CannedResponse:
        missing = " ".join(sorted(needed - expand(principal.scopes)))
        scope_value = challenge_scope(needed, principal.scopes)
        description = f"This operation needs the scope(s): {missing}"
        logger.info("insufficient scope for %s: missing %s", principal.subject, missing)
        return CannedResponse(
            403,
            {"error": "insufficient_scope", "error_description": description, "scope": scope_value},
            [
                (
                    "WWW-Authenticate",
                    f'Bearer error="insufficient_scope", scope="{scope_value}", '
                    f'resource_metadata="{self._metadata}", error_description="{description}"',
                )
            ],
        )
