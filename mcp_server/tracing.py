"""The MCP side of tracing (shared/tracing.py has the rest; docs/operations.md, "Tracing").

The MCP SDK already wraps every inbound message in a SERVER span that follows the OpenTelemetry
conventions for MCP: named `{mcp.method.name} {target}`, with `mcp.method.name`,
`mcp.protocol.version`, `jsonrpc.request.id`, `gen_ai.tool.name` / `gen_ai.prompt.name`, and as
parent the W3C trace context the client put in the request's `params._meta` (SEP-414), else the
HTTP request's span. With tracing on, this module adds:

- `McpSpanDetails`, a context-tier middleware inside that span: the conventions' `mcp.session.id`,
  `network.transport`, `network.protocol.*`, `client.*`, a link to the HTTP request's span when
  `_meta` chose another parent, and a span renamed to its bare method when a `tools/call` names
  no tool we serve (the name is the client's, and unbounded);
- `traced_tool`, the kit's wrapper of every tool function: an INTERNAL `execute_tool {name}` span
  (OpenTelemetry GenAI conventions) around the tool's own work, wherever the SDK runs it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Container
from typing import Any, TypeVar, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode, Tracer

from shared.tracing import current_http_span

FnT = TypeVar("FnT", bound=Callable[..., Any])


class McpSpanDetails:
    """Completes the SDK's MCP server span with what only the transport knows (see module doc)."""

    def __init__(self, tools: Container[str]) -> None:
        self._tools = tools

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        span = trace.get_current_span()
        if span.is_recording():
            self._describe(span, ctx)
        return await call_next(ctx)

    def _describe(self, span: Span, ctx: ServerRequestContext[Any, Any]) -> None:
        if ctx.method == "tools/call":
            name = ctx.params.get("name") if ctx.params else None
            if not isinstance(name, str) or name not in self._tools:
                span.update_name(ctx.method)
                span.set_attribute("gen_ai.tool.name", "_OTHER")
        request = ctx.request
        if request is None:  # stdio
            span.set_attribute("network.transport", "pipe")
            return
        attributes: dict[str, Any] = {
            "network.transport": "tcp",
            "network.protocol.name": "http",
            "network.protocol.version": request.scope.get("http_version", "1.1"),
        }
        # Only ids the SDK issued reach a handler (another id is answered 404 before dispatch):
        # the 2025-11-25 Mcp-Session-Id, or the legacy SSE transport's session_id parameter.
        session_id = request.headers.get("mcp-session-id") or request.query_params.get("session_id")
        if session_id:
            attributes["mcp.session.id"] = session_id
        if request.client is not None:
            attributes["client.address"] = request.client.host
            attributes["client.port"] = request.client.port
        span.set_attributes(attributes)
        http_span = current_http_span.get()
        parent = getattr(span, "parent", None)
        if http_span is not None and parent is not None:
            transport = http_span.get_span_context()
            if parent.span_id != transport.span_id:  # `_meta` chose the parent: link the transport
                span.add_link(transport)


def traced_tool(fn: FnT, name: str, tracer: Tracer) -> FnT:
    """`fn` wrapped in an `execute_tool {name}` span; signature, annotations and sync-or-async kind
    unchanged (the SDK derives the tool's schema and its Context parameter from them).

    A `ToolError` (what the caller reads as `isError`) is `error.type` `tool_error`; any other
    exception its class name. No argument, result or exception message is recorded.
    """
    span_name = f"execute_tool {name}"
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
    }

    def failed(span: Span, exc: Exception) -> None:
        span.set_attribute(
            "error.type", "tool_error" if isinstance(exc, ToolError) else type(exc).__qualname__
        )
        span.set_status(StatusCode.ERROR)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(
                span_name, attributes=attributes, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    failed(span, exc)
                    raise

        return cast(FnT, run_async)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(
            span_name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                failed(span, exc)
                raise

    return cast(FnT, run)
