"""Fixtures for the resource-server tests: a real MCP server in front of a real (small) AS.

`rs` is the MCP app (`mcp_server.app.create_app`) on uvicorn. It is parametrized over where its
tokens come from, so each behaviour is checked through every validator, in both modes. External
mode validates tokens from a `MiniAuthorizationServer` on another port:
- "jwt": RFC 9068 JWTs, verified locally against the AS's JWKS (TOKEN_FORMAT=jwt);
- "introspection": opaque tokens, checked by RFC 7662 introspection.
- "internal": AUTH_MODE=internal, the project's own authorization server mounted in the same
  app and the in-process validator; tokens come from the real interactive flow.
Static API keys are configured on every server (alice, bob, and a key without scopes).

`rs` is module-scoped: a module's tests share one server pair per token kind (starting and
stopping a pair costs ~0.3 s, which per test was most of this suite's time). They can: what they
change is per token or per user (sessions, notes), and a test that changes notes takes users of
its own (`rs.fresh_user()`); internal-mode tokens come from the real interactive flow once per
user and scopes and are reused (`Rs.token`). A test that changes the server itself (revokes a
token, breaks the AS, other settings) starts its own pair with `start_rs`.

The real AS mints only honest tokens, so tests that need forged claims or no scopes are
parametrized over `FORGEABLE_KINDS` only (the jwt and introspection variants cover them): no
combination is generated that would have to be skipped.

`mcp` speaks MCP over plain HTTP in either protocol revision: 2025-11-25 (initialize, a session
per token) or 2026-07-28 (stateless, per-request `_meta` and routing headers).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from auth_server.users import scrypt_hash
from mcp_server.app import create_app
from mcp_server.protection.enrichment import TenantLookup
from mcp_server.tenants import look_up_tenant
from shared.scopes import CATALOGUE
from shared.settings import Settings
from shared.validators.api_keys import api_key_digest
from tests.e2e.oauth_flow import mint, refresh
from tests.fixtures.local_server import stop_all
from tests.integration.rs.harness import (
    RS_CLIENT_ID,
    RS_CLIENT_SECRET,
    LocalServer,
    MiniAuthorizationServer,
    sse_or_json,
)

ALLOWED_ORIGIN = "https://app.example"
API_KEYS = {
    "alice": "api-key-alice-0123456789",
    "bob": "api-key-bob-0123456789",
    "nobody": "api-key-without-scopes-0123456789",
}
API_KEY_SCOPES = {"alice": list(CATALOGUE.baseline), "bob": list(CATALOGUE.baseline), "nobody": []}
USERS = ("alice", "bob", "carol", "dana", "erin", *(f"user{n:02d}" for n in range(1, 31)))
USER_PASSWORD = "correct horse battery staple"
CALLBACK = "http://127.0.0.1:9/callback"
TOKEN_KINDS = ["jwt", "introspection", "internal"]
FORGEABLE_KINDS = ["jwt", "introspection"]  # the token kinds whose AS mints whatever a test asks
ACCEPT = "application/json, text/event-stream"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"


@dataclass
class Rs:
    """The MCP server under test, its AS, and how to get a token for it."""

    server: LocalServer
    authority: MiniAuthorizationServer
    authority_server: LocalServer
    settings: Settings
    http: httpx2.AsyncClient
    token_kind: str
    server_app: Any = None
    _minted: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    _fresh_users: list[str] = field(default_factory=lambda: [u for u in USERS if u.startswith("user")])

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def mcp_url(self) -> str:
        return self.settings.mcp_resource_url

    async def token(
        self, subject: str, scopes: list[str] | tuple[str, ...] = CATALOGUE.baseline, **claims: Any
    ) -> str:
        """A token for `subject` from the AS, in the format this server is configured for.

        In internal mode it comes from the project's own authorization server through the whole
        interactive flow (discovery, registration, PKCE, login, consent, token), run in a worker
        thread because the flow's client is synchronous and the server shares this event loop; one
        flow per subject and scopes, the token then reused (nothing revokes tokens of a shared
        server). That AS mints only honest tokens: forged claims or no scopes are a test error
        (parametrize such a test over FORGEABLE_KINDS).
        """
        if self.token_kind == "jwt":
            return self.authority.mint_jwt(subject, scopes, **claims)
        if self.token_kind == "introspection":
            return self.authority.mint_opaque(subject, scopes, **claims)
        if claims or not scopes:
            raise AssertionError(
                "the real authorization server mints no forged or scopeless tokens: "
                "parametrize this test over FORGEABLE_KINDS"
            )
        key = (subject, tuple(sorted(scopes)))
        if key not in self._minted:
            grant = await asyncio.to_thread(
                mint,
                self.mcp_url,
                scope=" ".join(scopes),
                user=(subject, USER_PASSWORD),
                redirect_uri=CALLBACK,
            )
            self._minted[key] = grant.tokens.access_token
        return self._minted[key]

    def fresh_user(self) -> str:
        """A user no other test on this server has used (a login in internal mode, too)."""
        assert self._fresh_users, "out of fresh users: add more to USERS"
        return self._fresh_users.pop(0)

    async def token_and_refreshed(self, subject: str) -> tuple[str, str]:
        """Two different access tokens for one user of one client (internal: a real refresh)."""
        if self.token_kind != "internal":
            return await self.token(subject), await self.token(subject)
        grant = await asyncio.to_thread(
            mint,
            self.mcp_url,
            scope=" ".join(CATALOGUE.baseline),
            user=(subject, USER_PASSWORD),
            redirect_uri=CALLBACK,
        )
        assert grant.tokens.refresh_token is not None
        refreshed = await asyncio.to_thread(
            refresh, grant.discovery, grant.client, grant.tokens.refresh_token, self.mcp_url
        )
        return grant.tokens.access_token, refreshed.access_token


@functools.cache
def _user_hashes() -> dict[str, str]:
    """The login users of the real AS (internal mode), hashed once with a cheap scrypt cost."""
    return {name: scrypt_hash(USER_PASSWORD, n=2**10) for name in USERS}


def rs_settings(port: int, authority_url: str, token_kind: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_mode": "internal" if token_kind == "internal" else "external",
        "auth_users": _user_hashes(),
        "rate_limit_per_minute": 100_000,
        "host": "127.0.0.1",
        "mcp_port": port,
        "mcp_public_url": None,
        "auth_issuer_url": None if token_kind == "internal" else authority_url,
        "auth_server_url": None if token_kind == "internal" else authority_url,
        "token_format": "jwt" if token_kind == "jwt" else "opaque",
        "introspection_client_id": RS_CLIENT_ID,
        "introspection_client_secret": RS_CLIENT_SECRET,
        "introspection_timeout": 1.0,
        "allowed_origins": [ALLOWED_ORIGIN],
        "allowed_hosts": [],
        "legacy_sse": True,
        "showcase": True,  # the checks of resources and prompts use the showcase's
        "redis_url": None,
        "log_level": "WARNING",
        "api_keys": [
            {"sha256": api_key_digest(key), "subject": name, "scopes": API_KEY_SCOPES[name]}
            for name, key in API_KEYS.items()
        ],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


StartRs = Callable[..., Awaitable[Rs]]


async def launch(token_kind: str = "jwt", tenant_lookup: TenantLookup | None = None, **overrides: Any) -> Rs:
    """A fresh AS + MCP server pair (stop it with `shut_down`); `tenant_lookup` replaces the app's
    `look_up_tenant` (mcp_server/tenants.py), as a fork would."""
    authority_server = LocalServer.reserve()
    server = LocalServer.reserve()
    settings = rs_settings(server.port, authority_server.url, token_kind, **overrides)
    authority = MiniAuthorizationServer(authority_server.url, settings.mcp_resource_url)
    await authority_server.start(authority.app())
    app = create_app(settings, tenant_lookup=tenant_lookup or look_up_tenant)
    await server.start(app)
    http = httpx2.AsyncClient(base_url=server.url, timeout=10)
    return Rs(server, authority, authority_server, settings, http, token_kind, app)


async def shut_down(pairs: list[Rs]) -> None:
    for rs in pairs:
        await rs.http.aclose()
    await stop_all(server for rs in pairs for server in (rs.server, rs.authority_server))


@pytest.fixture
async def start_rs() -> AsyncIterator[StartRs]:
    """`await start_rs(token_kind, tenant_lookup=None, **setting_overrides)`: a pair of this
    test's own."""
    started: list[Rs] = []

    async def start(
        token_kind: str = "jwt", tenant_lookup: TenantLookup | None = None, **overrides: Any
    ) -> Rs:
        rs = await launch(token_kind, tenant_lookup, **overrides)
        started.append(rs)
        return rs

    yield start
    await shut_down(started)


@pytest.fixture(scope="module", params=TOKEN_KINDS)
async def rs(request: pytest.FixtureRequest) -> AsyncIterator[Rs]:
    """The module's shared pair for one token kind (narrow with indirect parametrization)."""
    shared = await launch(request.param)
    yield shared
    await shut_down([shared])


# --- speaking MCP over HTTP ------------------------------------------------------------------------
_ids = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def legacy_headers(token: str | None, session: str | None = None) -> dict[str, str]:
    headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": LEGACY}
    if token is not None:
        headers.update(bearer(token))
    if session is not None:
        headers["mcp-session-id"] = session
    return headers


def initialize_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "rs-tests", "version": "1"},
        },
    }


def modern_request(
    method: str, params: dict[str, Any] | None = None, capabilities: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 request body and its routing headers."""
    params = dict(params or {})
    params["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
        "io.modelcontextprotocol/clientInfo": {"name": "rs-tests", "version": "1"},
    }
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    name = params.get("name") if method in ("tools/call", "prompts/get") else params.get("uri")
    if method in ("tools/call", "prompts/get", "resources/read") and isinstance(name, str):
        headers["mcp-name"] = name
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}, headers


def message(response: httpx2.Response) -> Any:
    return sse_or_json(response.headers.get("content-type", ""), response.text)


@dataclass
class Mcp:
    """An MCP client over raw HTTP, in one protocol revision, that keeps one session per token."""

    http: httpx2.AsyncClient
    revision: str
    sessions: dict[str, str] = field(default_factory=dict)
    capabilities: dict[str, Any] = field(default_factory=dict)

    async def session(self, token: str) -> str:
        if token not in self.sessions:
            response = await self.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
            assert response.status_code == 200, response.text
            session = response.headers["mcp-session-id"]
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            acked = await self.http.post("/mcp", json=note, headers=legacy_headers(token, session))
            assert acked.status_code == 202, acked.text
            self.sessions[token] = session
        return self.sessions[token]

    async def post(
        self,
        method: str,
        params: dict[str, Any] | None,
        token: str | None,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        """POST one request; with a token on 2025-11-25 it goes to that token's session."""
        if self.revision == MODERN:
            body, modern_headers = modern_request(method, params, self.capabilities)
            if token is not None:
                modern_headers.update(bearer(token))
            return await self.http.post("/mcp", json=body, headers={**modern_headers, **(headers or {})})
        session = await self.session(token) if token is not None else None
        body = {"jsonrpc": "2.0", "id": next(_ids), "method": method}
        if params is not None:
            body["params"] = params
        return await self.http.post(
            "/mcp", json=body, headers={**legacy_headers(token, session), **(headers or {})}
        )

    async def result(self, method: str, params: dict[str, Any] | None, token: str) -> Any:
        response = await self.post(method, params, token)
        assert response.status_code == 200, (response.status_code, response.text)
        reply = message(response)
        assert "result" in reply, reply
        return reply["result"]

    async def call_tool(self, name: str, token: str, **arguments: Any) -> Any:
        return await self.result("tools/call", {"name": name, "arguments": arguments}, token)


@pytest.fixture(params=[LEGACY, MODERN])
def mcp(request: pytest.FixtureRequest, rs: Rs) -> Mcp:
    return Mcp(rs.http, request.param)
