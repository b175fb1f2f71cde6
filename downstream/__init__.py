"""A demo downstream API that accepts only tokens exchanged for it (RFC 8693, docs/agent-identity.md).

It stands for any API a tool calls on the signed-in user's behalf: `python -m downstream` runs it
on DOWNSTREAM_API_URL's port, and the MCP server's `downstream_profile` tool calls it with a token
it exchanged the caller's token for, never with the caller's token itself. It depends on `shared`
only, like a separate service would depend on nothing of this server but its published keys.
"""
