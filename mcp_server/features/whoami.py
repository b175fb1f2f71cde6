"""`whoami`: what the server knows about the caller, the first tool to call when auth misbehaves."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcp_server.features.kit import ANONYMOUS, READ_ONLY, ToolContext, Tools, current_principal
from shared.storage import Store


class Identity(BaseModel):
    """What the server knows about the caller from its credential (never the credential itself)."""

    authenticated: bool
    subject: str
    client_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    audience: list[str] = Field(default_factory=list)
    issuer: str | None = None
    expires_at: int | None = Field(None, description="Unix time the access token expires")


def register(tools: Tools, store: Store) -> None:
    @tools.add(annotations=READ_ONLY, quiet=True)
    async def whoami(ctx: ToolContext) -> Identity:
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
