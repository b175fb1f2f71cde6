"""The delegation seam: how the MCP server gets a token for a downstream API (RFC 8693).

`mcp_server` depends only on `TokenExchanger`; the composition root decides who answers: the
authorization server's grant in process (internal mode, `auth_server.delegation`), or
`HttpTokenExchanger`, which asks the authorization server's token endpoint as the MCP server's
own delegation credential (external mode: TOKEN_EXCHANGE_CLIENT_ID / _SECRET, client_secret_basic,
the endpoint found by discovery like introspection's).

The exchanged token is for the downstream API only. The caller's own token goes to the
authorization server as `subject_token` and nowhere else (MCP security best practices, "Token
Passthrough").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import httpx2

from shared import tracing, untrusted_json
from shared.oauth import TOKEN_EXCHANGE_GRANT
from shared.settings import Settings
from shared.validation import ValidatorUnavailable
from shared.validators.discovery import ProviderMetadata

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
_MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    access_token: str
    expires_in: int
    scope: str


class ExchangeRefused(Exception):
    """The authorization server refused the exchange (an OAuth error: `error`, `description`)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


class ExchangeUnavailable(Exception):
    """The authorization server could not be asked, or answered nonsense: retry later."""


class TokenExchanger(Protocol):
    async def exchange(self, subject_token: str, *, audience: str, scope: str) -> ExchangedToken:
        """A token for `audience` with `scope`, acting for the subject of `subject_token`;
        ExchangeRefused or ExchangeUnavailable otherwise."""


class HttpTokenExchanger:
    """Token exchange at the authorization server's token endpoint, over HTTP (external mode)."""

    def __init__(
        self,
        *,
        metadata: ProviderMetadata,
        client_id: str,
        client_secret: str,
        timeout: float = 3.0,
    ) -> None:
        self._metadata = metadata
        # RFC 6749 section 2.3.1: each part form-urlencoded before the Basic encoding.
        self._auth = httpx2.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
        self._peer = tracing.PeerClient(None, timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpTokenExchanger:
        assert settings.token_exchange_client_secret is not None, "checked by Settings"
        return cls(
            metadata=ProviderMetadata.from_settings(settings),
            client_id=settings.token_exchange_client_id,
            client_secret=settings.token_exchange_client_secret,
            timeout=settings.introspection_timeout,
        )

    async def aclose(self) -> None:
        await self._peer.aclose()

    async def exchange(self, subject_token: str, *, audience: str, scope: str) -> ExchangedToken:
        client = self._peer.get()
        try:
            endpoint = await self._metadata.endpoint(client, "token_endpoint")
        except ValidatorUnavailable:
            raise ExchangeUnavailable("authorization server metadata unavailable") from None
        if endpoint is None:
            raise ExchangeUnavailable("the authorization server names no token_endpoint")
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
            "scope": scope,
        }
        try:
            response = await client.post(endpoint, data=form, auth=self._auth)
        except httpx2.HTTPError as exc:
            raise ExchangeUnavailable(f"token endpoint unreachable ({type(exc).__name__})") from None
        try:
            body = untrusted_json.parse(response.content, max_bytes=_MAX_RESPONSE_BYTES)
        except untrusted_json.UntrustedJsonError:
            body = None
        if not isinstance(body, dict):
            raise ExchangeUnavailable(f"the token endpoint answered HTTP {response.status_code} without JSON")
        if response.status_code != 200:
            if 400 <= response.status_code < 500 and isinstance(body.get("error"), str):
                description = body.get("error_description")
                raise ExchangeRefused(body["error"], description if isinstance(description, str) else "")
            raise ExchangeUnavailable(f"the token endpoint answered HTTP {response.status_code}")
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(expires_in, int):
            raise ExchangeUnavailable("the token endpoint's answer has no access_token")
        scope_value = body.get("scope")
        return ExchangedToken(token, expires_in, scope_value if isinstance(scope_value, str) else scope)
