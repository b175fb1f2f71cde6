'''The kit for writing tools: one decorator, annotation presets, the caller, storage errors.

A feature is a module in `mcp_server/features/` with a `register(tools, store)` function; the
package finds it by itself. A whole feature, with a scope from `shared/scopes.py`:

    from mcp_server.features.kit import READ_ONLY, ToolContext, Tools, caller_subject
    from shared.storage import Store

    def register(tools: Tools, store: Store) -> None:
        @tools.add(scopes=["greetings:send"], annotations=READ_ONLY)
        async def send_greeting(person: str, ctx: ToolContext) -> str:
            """Greet someone in your name."""
            return f"Hello {person}, from {caller_subject(ctx)}"

`Tools.add` is the one way to register a tool (docs/extending.md has the whole recipe):
- `scopes`: what a token needs to call it, names from the scope catalogue; none means
  `mcp:tools:read`. An unknown name stops start-up rather than producing a challenge no
  authorization server can satisfy.
- `annotations`: one of the presets below, telling clients what calling the tool does.
- the docstring is the description clients see, sent as one line.
Raise `ToolError("...")` for an error the caller should read (bad input, a limit reached): any
other exception is a crash, logged with its traceback, and the caller sees only "Error executing
tool". Tools are coroutines unless they block: the SDK runs a plain `def` in a worker thread.

Long-running tools take `task="optional"` (a client of the tasks extension gets a task handle,
any other client a plain call) or `task="required"` (only clients of the extension may call it):
docs/tasks.md. In such a tool, `report_progress` sets the task's status message, `gather` asks
the client for input while the task waits, and `become_task` makes the call a task at once.
'''

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeAlias, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from opentelemetry.trace import Tracer

from mcp_server.client_input import answer_as, elicit_form, gather
from mcp_server.protection.principal import ANONYMOUS, current_delegation, current_principal, current_tenant
from mcp_server.protection.scopes import DEFAULT_TOOL_SCOPES
from mcp_server.sdk_access import replace_input_schema, tool_reaches_client
from mcp_server.tasks.extension import TaskSupport, TaskTool
from mcp_server.tasks.runner import current_task
from mcp_server.tenants import ANONYMOUS_TENANT, Tenant
from mcp_server.tracing import traced_tool
from shared.scopes import CATALOGUE, ScopeCatalogue
from shared.storage.base import StorageUnavailable
from shared.token_exchange import ExchangeRefused, ExchangeUnavailable

__all__ = [
    "ANONYMOUS",
    "ASKS_CLIENT",
    "DELETES",
    "READS_ELSEWHERE",
    "READ_ONLY",
    "WRITES",
    "Tenant",
    "ToolContext",
    "ToolError",
    "Tools",
    "answer_as",
    "become_task",
    "caller_subject",
    "caller_tenant",
    "current_principal",
    "downstream_token",
    "elicit_form",
    "gather",
    "report_progress",
    "storage_errors_as_tool_errors",
]

FnT = TypeVar("FnT", bound=Callable[..., Any])

ToolContext: TypeAlias = Context[Any, Any]
"""Annotate a parameter with it to receive the request's context (the SDK fills it in)."""

# --- annotation presets: what calling a tool does ---------------------------------------------------
# Read-only: changes nothing. Destructive: may lose something. Idempotent: repeating the call has
# no further effect. Open world: reaches outside this server (asking the client or its user for
# input is interaction with the caller, not the open world).

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
"""Changes nothing; calling it again gives the same answer unless something else changed."""

ASKS_CLIENT = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Changes nothing on the server, but the answer depends on what the client or its user replies."""

WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
"""Adds or changes something on this server; nothing is lost."""

READS_ELSEWHERE = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
"""Changes nothing; reads from another service (a downstream API) for the caller."""

DELETES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)
"""Removes something on this server; deleting it again changes nothing more."""


class Tools:
    """Registers tools on one MCPServer and remembers the scopes each needs.

    `ScopeCheck` asks `required_scopes(name)` on every `tools/call`, before the SDK runs the tool.
    With a `tracer` (tracing on), every tool runs inside an `execute_tool {name}` span, however
    the SDK calls it (mcp_server/tracing.py).
    """

    def __init__(
        self, server: MCPServer, catalogue: ScopeCatalogue = CATALOGUE, *, tracer: Tracer | None = None
    ) -> None:
        self.server = server
        self._catalogue = catalogue
        self._tracer = tracer
        self._registered: set[str] = set()
        self._scopes: dict[str, frozenset[str]] = {}
        self._task_tools: dict[str, TaskTool] = {}
        self._quiet: set[str] = set()

    def add(
        self,
        *,
        annotations: ToolAnnotations,
        scopes: Iterable[str] = (),
        title: str | None = None,
        name: str | None = None,
        input_schema: dict[str, Any] | None = None,
        task: TaskSupport | None = None,
        task_ttl: float | None = None,
        quiet: bool = False,
    ) -> Callable[[FnT], FnT]:
        """Register the decorated function as a tool (it is returned unchanged).

        `title` is the name a client shows; `name` defaults to the function's. `input_schema`
        replaces the JSON Schema the SDK derives from the signature, for what a signature cannot
        express; arguments are still validated against the signature first. `task`: the tool
        may ("optional") or must ("required") run as a task for clients of the tasks extension;
        `task_ttl`: how long its tasks are kept, seconds (at most TASK_MAX_TTL, the default).
        `quiet`: the tool takes a Context only to read the caller and never logs, reports
        progress or asks the client anything, so a 2025-11-25 call of it is answered with one
        JSON body instead of an SSE stream (`mcp_server/responses.py`; a tool without a Context
        is quiet by construction). Its notifications would be dropped, and a request to the
        client would fail at once.
        """
        if quiet and task is not None:
            raise ValueError("a task tool reports to its task, never quietly: drop quiet=True")
        if isinstance(scopes, str):
            raise TypeError(f"scopes is a list of scope names: scopes=[{scopes!r}]")
        if task_ttl is not None and (task is None or task_ttl <= 0):
            raise ValueError("task_ttl is a positive number of seconds, for a tool registered with task=...")
        required = frozenset(scopes)
        unknown = self._catalogue.unknown(sorted(required))
        if unknown:
            raise ValueError(f"unknown scope(s) {unknown}: add a row to APP_SCOPES in shared/scopes.py")
        hints = annotations if title is None else annotations.model_copy(update={"title": title})

        def register(fn: FnT) -> FnT:
            tool_name = name or fn.__name__
            if tool_name in self._registered:
                raise ValueError(f"a tool named {tool_name!r} is already registered")
            # MCPServer sends a docstring verbatim: one wrapped over several source lines would
            # reach clients with the code's line breaks and indentation in mid-sentence.
            description = " ".join(inspect.cleandoc(fn.__doc__ or "").split())
            if not description:
                raise ValueError(f"tool {tool_name!r} needs a docstring: it is the description clients see")
            runs = fn if self._tracer is None else traced_tool(fn, tool_name, self._tracer)
            self.server.add_tool(
                runs, name=tool_name, title=title, description=description, annotations=hints
            )
            if input_schema is not None:
                replace_input_schema(self.server, tool_name, input_schema)
            self._registered.add(tool_name)
            if required:
                self._scopes[tool_name] = required
            if task is not None:
                self._task_tools[tool_name] = TaskTool(task, required or DEFAULT_TOOL_SCOPES, task_ttl)
            if quiet:
                self._quiet.add(tool_name)
            return fn

        return register

    def remove(self, name: str) -> None:
        """Unregister a tool added with `add` (its scopes go with it)."""
        self.server.remove_tool(name)
        self._registered.discard(name)
        self._scopes.pop(name, None)
        self._task_tools.pop(name, None)
        self._quiet.discard(name)

    def __contains__(self, name: object) -> bool:
        return name in self._registered

    def required_scopes(self, name: str) -> frozenset[str] | None:
        """The scopes the tool `name` declared; None when it declared none (or is unknown)."""
        return self._scopes.get(name)

    def answers_only(self, name: str) -> bool:
        """Whether a call of the tool `name` can send nothing but its result: a tool registered
        here, not a task tool, that has no way to reach the client (no Context, no parameter the
        SDK resolves by asking the client) or was registered with `quiet=True`. Such a 2025-11-25
        call is answered with one JSON body."""
        if name not in self._registered or name in self._task_tools:
            return False
        return name in self._quiet or tool_reaches_client(self.server, name) is False

    def task_tool(self, name: str) -> TaskTool | None:
        """How the tool `name` runs as a task; None when it never does (or is unknown)."""
        return self._task_tools.get(name)


def caller_subject(ctx: ToolContext) -> str:
    """Who is calling: the authenticated subject, or "anonymous" without authentication (stdio,
    AUTH_MODE=none). Take the owner of per-user data from here, never from an argument."""
    principal = current_principal(ctx)
    return principal.subject if principal is not None else ANONYMOUS


def caller_tenant(ctx: ToolContext) -> Tenant:
    """The customer behind the caller: the record `look_up_tenant` (mcp_server/tenants.py) made
    for this principal, looked up before the tool ran (cached). Without authentication (stdio,
    AUTH_MODE=none) everyone shares `ANONYMOUS_TENANT`."""
    tenant = current_tenant(ctx)
    if tenant is not None:
        return tenant
    if current_principal(ctx) is not None:
        # A principal always comes with its tenant behind the endpoint guard (mcp_server.protection).
        raise RuntimeError(
            "an authenticated request without a tenant: EnrichPrincipal is not in front of /mcp"
        )
    return ANONYMOUS_TENANT


async def downstream_token(ctx: ToolContext, audience: str, scope: str) -> str:
    """A token for the downstream API `audience`, with `scope`, for the caller: the caller's own
    token exchanged at the authorization server (RFC 8693), never the caller's token itself
    (docs/agent-identity.md, "Token exchange"). Send it to that API only. A ToolError when the
    server does no token exchange (TOKEN_EXCHANGE_AUDIENCES), the caller used an API key or no
    token, or the authorization server refuses (the audience is not listed, the scope is not
    within the caller's) or cannot be reached."""
    delegation = current_delegation(ctx)
    if delegation is None:
        raise ToolError("This tool needs the caller's OAuth access token to act downstream on their behalf")
    try:
        exchanged = await delegation.token_for(audience, scope)
    except ExchangeRefused as refused:
        raise ToolError(f"The authorization server refused a token for {audience}: {refused.error}") from None
    except ExchangeUnavailable:
        raise ToolError(
            "The authorization server cannot issue a downstream token right now; retry shortly"
        ) from None
    return exchanged.access_token


async def report_progress(
    ctx: ToolContext, progress: float, total: float | None = None, message: str | None = None
) -> None:
    """Tell the caller how far the tool got: progress notifications on a plain call, the task's
    status message (what `tasks/get` shows) in a task."""
    task = current_task()
    if task is not None and task.is_task:
        fraction = f"{progress:g}" if total is None else f"{progress:g}/{total:g}"
        await task.report(f"{message} ({fraction})" if message else fraction)
        return
    await ctx.report_progress(progress, total, message)


async def become_task(ctx: ToolContext) -> None:
    """From here on, run this call as a task: the client gets its task handle now, instead of
    after the immediate-result window. Nothing happens on a call that is not a task call (a
    client without the tasks extension, an earlier protocol revision)."""
    task = current_task()
    if task is not None:
        await task.become_task()


STORAGE_UNAVAILABLE = "Storage is temporarily unavailable (the server cannot reach it); retry shortly"


@contextlib.contextmanager
def storage_errors_as_tool_errors() -> Iterator[None]:
    """Answer a tool error that says the storage is down and invites a retry (Redis unreachable),
    rather than the SDK's opaque "Error executing tool" and a logged traceback."""
    try:
        yield
    except StorageUnavailable:
        raise ToolError(STORAGE_UNAVAILABLE) from None
