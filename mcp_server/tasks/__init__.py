"""Long-running tools as tasks: `io.modelcontextprotocol/tasks` (SEP-2663), owned by their caller.

- `store`: task state in the Store (any instance answers for any task), ownership, limits, leases;
- `runner`: running task tool calls in this process, the lease, cancellation, input while running;
- `extension`: the SDK `Extension` (tools/call interceptor, tasks/get, tasks/update, tasks/cancel);
- `listen`: `notifications/tasks` on `subscriptions/listen` streams for the task ids a client names.

Submodules are imported where used (this package's `__init__` imports nothing: `client_input`
needs `runner`, and `extension` needs `client_input`).

Tools opt in where they are registered, `@tools.add(..., task="optional" | "required")`
(`mcp_server.features.kit`); docs/tasks.md is the user's guide.
"""

from __future__ import annotations
