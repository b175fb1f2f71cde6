"""What a tool may do with the caller's access token: exchange it, never read it.

The bearer middleware keeps the credential to itself (a tool's `AccessToken.token` is redacted),
so no tool can forward it to another service (MCP security best practices, "Token
Passthrough"). A tool that needs a downstream API for the caller gets a `Delegation` instead,
from the request state: it holds the token privately and can do one thing with it, ask the
authorization server for a token made for that API (RFC 8693 token exchange: another audience,
a scope within the caller's, the MCP server named as the actor, a short life). The kit's
`downstream_token` is how a tool asks (docs/agent-identity.md, "Token exchange").

Only an OAuth access token is delegated: a request authenticated with a static API key has no
Delegation (there is no grant at the authorization server to act under).
"""

from __future__ import annotations

from shared.token_exchange import ExchangedToken, TokenExchanger

DELEGATION_STATE_KEY = "delegation"


class Delegation:
    """The caller's token, exchangeable and nothing else."""

    __slots__ = ("__exchanger", "__token")

    def __init__(self, exchanger: TokenExchanger, token: str) -> None:
        self.__exchanger = exchanger
        self.__token = token

    def __repr__(self) -> str:
        return "Delegation(<caller's token withheld>)"

    async def token_for(self, audience: str, scope: str) -> ExchangedToken:
        """A token for `audience` with `scope` (space-separated), for the caller; raises
        `shared.token_exchange.ExchangeRefused` / `ExchangeUnavailable`."""
        return await self.__exchanger.exchange(self.__token, audience=audience, scope=scope)
