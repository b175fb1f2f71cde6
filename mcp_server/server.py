"""Builds the MCPServer: the app's features and, with SHOWCASE, the protocol showcase.

Transport-agnostic: the same server object serves Streamable HTTP (both protocol revisions),
the legacy HTTP+SSE transport and stdio.
"""

from __future__ import annotations

from mcp.server.caching import CacheableMethod, CacheHint
from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import RequestStateSecurity
from mcp_types import SubscriptionsListenRequestParams

from mcp_server.auth_extensions import authorization_extensions
from mcp_server.features import register_features
from mcp_server.features.kit import Tools
from mcp_server.sdk_access import drop_sdk_tracing, lowlevel_server
from mcp_server.tasks.extension import TasksExtension
from mcp_server.tasks.listen import TaskAwareListen
from mcp_server.tasks.runner import GrantCheck, TaskRunner
from mcp_server.tasks.tools import register as register_task_tools
from mcp_server.tracing import McpSpanDetails
from shared.settings import Settings
from shared.storage import Store
from shared.tracing import active_tracer

SERVER_NAME = "mcp-reference-server"
SERVER_VERSION = "0.1.0"

# Freshness hints on cacheable results (2026-07-28, SEP-2549). Private: with authentication on,
# what a caller sees may depend on who they are. Lists can change at run time (and announce it on
# subscriptions/listen), so they are kept briefly; resource contents are never assumed fresh.
CACHE_HINTS: dict[CacheableMethod, CacheHint] = {
    "server/discover": CacheHint(ttl_ms=60_000, scope="private"),
    "tools/list": CacheHint(ttl_ms=30_000, scope="private"),
    "prompts/list": CacheHint(ttl_ms=30_000, scope="private"),
    "resources/list": CacheHint(ttl_ms=30_000, scope="private"),
    "resources/templates/list": CacheHint(ttl_ms=30_000, scope="private"),
    "resources/read": CacheHint(ttl_ms=0, scope="private"),
}


def build_mcp_server(
    settings: Settings, store: Store, *, grant_alive: GrantCheck | None = None
) -> tuple[MCPServer, Tools, TaskRunner]:
    """The server, its `Tools` (which the scope check asks what each tool needs) and its
    `TaskRunner` (the tasks extension's; the caller closes it at shutdown). `grant_alive` lets
    a task stop when the grant that started it ends (docs/tasks.md)."""
    runner = TaskRunner.from_settings(settings, store, grant_alive=grant_alive)
    # Which tools run as tasks is known to `tools`, made below (it needs the server first).
    tasks = TasksExtension(runner, lambda name: tools.task_tool(name))
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="MCP Reference Server",
        version=SERVER_VERSION,
        instructions=(
            "A reference MCP server: every protocol feature, plus tools that show OAuth at work "
            "(whoami, per-user notes with scope-gated writes)."
        ),
        log_level=settings.log_level,
        cache_hints=CACHE_HINTS,
        request_state_security=_request_state_security(settings),
        extensions=[tasks, *authorization_extensions(settings)],
    )
    _watch_tasks_on_listen(server, runner)
    tracer = active_tracer()  # None unless tracing is on (shared/tracing.py)
    tools = Tools(server, tracer=tracer)
    if tracer is None:
        drop_sdk_tracing(server)
    else:
        server.middleware.append(McpSpanDetails(tools))
    register_task_tools(tools, runner.store)
    register_features(tools, store)
    if settings.downstream_api_url and settings.auth_mode != "none":
        from mcp_server import downstream_profile

        downstream_profile.register(tools, settings.downstream_api_url)
    if settings.showcase:
        from mcp_server.showcase import register_showcase

        register_showcase(server, tools)
    return server, tools, runner


def _request_state_security(settings: Settings) -> RequestStateSecurity | None:
    """2026-07-28 `requestState` is sealed (AES-GCM) by the server and echoed by the client on its
    next request, which may reach another instance: with REQUEST_STATE_KEYS every instance shares
    the key ring; without, the SDK generates a key only this process knows (one instance)."""
    if not settings.request_state_keys:
        return None
    return RequestStateSecurity(keys=list(settings.request_state_keys))


def _watch_tasks_on_listen(server: MCPServer, runner: TaskRunner) -> None:
    """`subscriptions/listen` also streams the status of the caller's tasks it names
    (`mcp_server/tasks/listen.py`): the SDK's own handler, wrapped. Listen requests go to the
    low-level server, which MCPServer keeps private (`sdk_access`)."""
    lowlevel = lowlevel_server(server)
    listen = lowlevel.get_request_handler("subscriptions/listen")
    if listen is not None:
        handler = TaskAwareListen(listen.handler, runner.store)
        lowlevel.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, handler)
