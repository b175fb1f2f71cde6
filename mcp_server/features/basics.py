"""The tools people try first: echo, add, whoami."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from mcp_server.features.hints import PURE
from mcp_server.protection.principal import ANONYMOUS, current_principal


class Identity(BaseModel):
    """What the server knows about the caller from its credential (never the credential itself)."""

    authenticated: bool
    subject: str
    client_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    audience: list[str] = Field(default_factory=list)
    issuer: str | None = None
    expires_at: int | None = Field(None, description="Unix time the access token expires")


def register(server: MCPServer) -> None:
    # Coroutines on purpose: the SDK runs a plain `def` tool in a worker thread, a hand-off that
    # costs more than these tools do (docs/performance.md).
    @server.tool(annotations=PURE)
    async def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    @server.tool(annotations=PURE)
    async def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @server.tool(annotations=PURE)
    async def whoami(ctx: Context[Any, Any]) -> Identity:
        """Who you are to this server: subject, client, scopes, audience, issuer and token expiry."""
        principal = current_principal(ctx)
        if principal is None:
            return Identity(authenticated=False, subject=ANONYMOUS)
        return Identity(
            authenticated=True,
            subject=principal.subject,
            client_id=principal.client_id,
            scopes=sorted(principal.scopes),
            audience=list(principal.audience),
            issuer=principal.issuer,
            expires_at=principal.expires_at,
        )
