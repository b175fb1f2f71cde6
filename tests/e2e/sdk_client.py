"""The MCP Python SDK's own OAuth client (`OAuthClientProvider`), made headless for tests.

`HeadlessUser` is what a person at a browser would be: the provider's `redirect_handler` hands it
the authorization URL, it logs in and consents through our pages (the login driver, in a worker
thread with its own HTTP client, never the authenticated one), and `callback_handler` returns
the `code`, `state` and `iss` that arrived at the redirect URI. It records every authorization
URL, so tests can see how many times a person was asked and for what.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl

from tests.e2e.login_driver import DEMO_USER, AuthorizationResponse, authorize_async

REDIRECT_URI = "http://127.0.0.1:33418/callback"  # nothing listens: the driver stops at the Location
Revision = Literal["2025-11-25", "2026-07-28"]
REVISIONS: tuple[Revision, ...] = ("2025-11-25", "2026-07-28")


class MemoryTokenStorage:
    """The SDK's TokenStorage protocol, in memory (what a real client persists to disk)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.token_history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.token_history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class HeadlessUser:
    username: str = DEMO_USER[0]
    password: str = DEMO_USER[1]
    authorization_urls: list[str] = field(default_factory=list)
    responses: list[AuthorizationResponse] = field(default_factory=list)
    verify: ssl.SSLContext | bool = True  # the browser's trust (a test CA behind an https proxy)

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        result = await authorize_async(
            authorization_url, username=self.username, password=self.password, verify=self.verify
        )
        assert result.error is None, f"authorization refused: {result.redirect_url}"
        self.responses.append(result)

    async def callback_handler(self) -> AuthorizationCodeResult:
        last = self.responses[-1]
        assert last.code is not None
        return AuthorizationCodeResult(code=last.code, state=last.state, iss=last.iss)

    @property
    def logins(self) -> int:
        return len(self.authorization_urls)

    def requested(self, index: int = -1) -> dict[str, str]:
        """Parameters of an authorization request (single-valued)."""
        query = parse_qs(urlsplit(self.authorization_urls[index]).query)
        return {k: v[0] for k, v in query.items()}


def client_metadata(scope: str | None = None) -> OAuthClientMetadata:
    return OAuthClientMetadata(
        client_name="mcp-reference-server e2e (SDK OAuthClientProvider)",
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
        scope=scope,
    )


@dataclass
class Traffic:
    """Every HTTP exchange the SDK's HTTP client made, as (method, url, status)."""

    exchanges: list[tuple[str, str, int]] = field(default_factory=list)
    challenges: list[tuple[int, str]] = field(default_factory=list)  # (status, WWW-Authenticate)

    async def on_response(self, response: httpx2.Response) -> None:
        self.exchanges.append((response.request.method, str(response.request.url), response.status_code))
        if "www-authenticate" in response.headers:
            self.challenges.append((response.status_code, response.headers["www-authenticate"]))

    def statuses_for(self, fragment: str) -> list[int]:
        return [status for _, url, status in self.exchanges if fragment in url]


@dataclass
class SdkClient:
    mcp_url: str
    user: HeadlessUser
    storage: MemoryTokenStorage
    provider: OAuthClientProvider
    traffic: Traffic

    @contextlib.asynccontextmanager
    async def connect(self, revision: Revision) -> AsyncIterator[Client]:
        """An MCP session over Streamable HTTP: the 2025 handshake, or the 2026-07-28 revision."""
        http = httpx2.AsyncClient(
            auth=self.provider,
            timeout=httpx2.Timeout(30.0),
            event_hooks={"response": [self.traffic.on_response]},
            trust_env=False,
            verify=self.user.verify,
        )
        async with http:
            mode = "legacy" if revision == "2025-11-25" else revision
            async with Client(streamable_http_client(self.mcp_url, http_client=http), mode=mode) as client:
                yield client


def make_sdk_client(
    mcp_url: str,
    user: HeadlessUser | None = None,
    *,
    client_metadata_url: str | None = None,
    scope: str | None = None,
) -> SdkClient:
    """A fresh client with no stored credentials (a person installing the client for the first time)."""
    user = user or HeadlessUser()
    storage = MemoryTokenStorage()
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=client_metadata(scope),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )
    if client_metadata_url is not None:
        # The SDK accepts only https metadata URLs in its constructor; the test serves the
        # document from plain http on loopback (the server runs with CIMD_ALLOW_LOOPBACK=true),
        # so the URL is set on the provider's context directly. Everything after that - the
        # decision to use CIMD because the AS advertises it, the client_id, the flow - is the SDK's.
        provider.context.client_metadata_url = client_metadata_url
    return SdkClient(mcp_url, user, storage, provider, Traffic())


def structured(result: object) -> dict[str, Any]:
    """A tool's structured result (or its JSON text content, for servers that only send text)."""
    value = getattr(result, "structured_content", None)
    if isinstance(value, dict):
        return value
    for block in getattr(result, "content", []) or []:
        text = getattr(block, "text", None)
        if text:
            try:
                parsed = json.loads(text)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                return parsed
    raise AssertionError(f"no structured result in {result!r}")


def subject_of(whoami_result: object) -> str:
    assert not getattr(whoami_result, "is_error", False), whoami_result
    return str(structured(whoami_result)["subject"])


def text_of(result: object) -> str:
    """All text content of a tool result, joined (plus structured content, if any)."""
    parts: list[str] = []
    for block in getattr(result, "content", []) or []:
        text = getattr(block, "text", None)
        if text:
            parts.append(text)
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if structured:
        parts.append(repr(structured))
    return "\n".join(parts)
