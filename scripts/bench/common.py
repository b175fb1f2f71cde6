"""What the benchmark (`make bench`) and the load test (`make loadtest`) share.

- `mint_tokens`: access tokens through the real OAuth flow (RFC 9728 + RFC 8414 discovery, dynamic
  client registration, PKCE, the login and consent pages, the token endpoint), a few per user and
  client, with one logged-in browser session per user, as a person would;
- `open_session`: a 2025-11-25 session (initialize, then notifications/initialized);
- `tools_call`: one tools/call request in either revision, headers and body as the SDK requires
  on that wire, and `result_of` to read the JSON-RPC reply from JSON or SSE;
- `bench_users`: the AUTH_USERS setting for a few login users (cheap scrypt cost, test only);
- DPoP (RFC 9449): `mint_tokens(..., dpop=True)` binds each token to a key of its own (the proof at
  the token endpoint), and `proof_for` makes the fresh proof each request with such a token needs
  (the benchmark makes its whole supply ahead of each measurement: wrk cannot sign).

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as `python scripts/...` as well as `python -m scripts...`
    sys.path.insert(0, str(REPO_ROOT))

import httpx2  # noqa: E402

from tests.e2e.login_driver import authorize  # noqa: E402
from tests.e2e.oauth_flow import (  # noqa: E402
    RegisteredClient,
    authorization_url,
    discover,
    exchange_code,
    pkce_pair,
    register,
)
from tests.fixtures.dpop_client import DPoPKey  # noqa: E402

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
REVISIONS = (MODERN, LEGACY)
ACCEPT = "application/json, text/event-stream"
USER_PASSWORD = "bench-password-0123456789"  # noqa: S105 - a throwaway test user's password
CALLBACK = "http://127.0.0.1:9/callback"
SCOPE = "mcp:tools:read"

_ids = itertools.count(1)


def bench_users(count: int) -> dict[str, str]:
    """AUTH_USERS for `count` users (bench-user-1...), hashed with a cheap scrypt cost."""
    from auth_server.users import scrypt_hash

    return {f"bench-user-{n}": scrypt_hash(USER_PASSWORD, n=2**10) for n in range(1, count + 1)}


@dataclass(frozen=True)
class Minted:
    user: str
    client_id: str
    access_token: str
    dpop: DPoPKey | None = None  # the key the token is bound to (a DPoP token), else a Bearer token


def mint_tokens(
    mcp_url: str, users: list[str], clients_per_user: int, tokens_per_client: int, *, dpop: bool = False
) -> list[Minted]:
    """Tokens through the real flow: per user one login, per client one registration, and per
    token one authorization (PKCE, consent) and one code exchange (with `dpop`, a proof by a new
    ES256 key per token, which the token is then bound to)."""
    disc = discover(mcp_url)
    minted: list[Minted] = []
    for user in users:
        with httpx2.Client(follow_redirects=False, timeout=15.0, trust_env=False) as browser:
            for n in range(clients_per_user):
                client: RegisteredClient = register(disc, CALLBACK, name=f"bench client {user} {n}")
                for _ in range(tokens_per_client):
                    verifier, challenge = pkce_pair()
                    state = secrets.token_urlsafe(12)
                    url = authorization_url(
                        disc,
                        client.client_id,
                        CALLBACK,
                        scope=SCOPE,
                        resource=mcp_url,
                        state=state,
                        challenge=challenge,
                    )
                    result = authorize(url, username=user, password=USER_PASSWORD, client=browser)
                    if result.error is not None or not result.code or result.state != state:
                        raise RuntimeError(f"authorization for {user} failed: {result.redirect_url}")
                    key = DPoPKey.generate() if dpop else None
                    tokens = exchange_code(disc, client, result.code, verifier, mcp_url, dpop=key)
                    minted.append(Minted(user, client.client_id, tokens.access_token, key))
    return minted


def proof_for(key: DPoPKey, mcp_url: str, token: str) -> str:
    """A fresh DPoP proof (its own `jti`, the current `iat`) for one POST of `token` to `mcp_url`."""
    return key.proof("POST", mcp_url, token=token)


def headers_for(
    revision: str, token: str | None, session: str | None = None, *, proof: str | None = None
) -> dict[str, str]:
    """The request's headers; with `proof`, the token goes in the DPoP scheme with that proof."""
    headers = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": revision}
    if revision == MODERN:
        headers["mcp-method"] = "tools/call"
        headers["mcp-name"] = "echo"
    if token is not None and proof is not None:
        headers["authorization"] = f"DPoP {token}"
        headers["dpop"] = proof
    elif token is not None:
        headers["authorization"] = f"Bearer {token}"
    if session is not None:
        headers["mcp-session-id"] = session
    return headers


def tools_call_body(revision: str, message: str = "hello") -> dict[str, Any]:
    params: dict[str, Any] = {"name": "echo", "arguments": {"message": message}}
    if revision == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
        }
    return {"jsonrpc": "2.0", "id": next(_ids), "method": "tools/call", "params": params}


def result_of(response: httpx2.Response) -> Any:
    """The JSON-RPC reply in a response, whether it came as JSON or as an SSE stream."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return json.loads(response.text)
    found = None
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            message = json.loads(line[5:])
            if "id" in message:
                found = message
    return found


def echo_text(reply: Any) -> str | None:
    """The text an `echo` result carries, or None when the reply is not a successful result."""
    if not isinstance(reply, dict) or "result" not in reply:
        return None
    result = reply["result"]
    if result.get("isError"):
        return None
    content = result.get("content") or []
    return content[0].get("text") if content else None


def initialize_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }


def open_session(client: httpx2.Client, mcp_url: str, token: str | None, key: DPoPKey | None = None) -> str:
    """A 2025-11-25 session for `token` (DPoP-bound to `key` if given): initialize, then
    notifications/initialized (202)."""

    def proof() -> str | None:
        return proof_for(key, mcp_url, token) if key is not None and token is not None else None

    response = client.post(mcp_url, json=initialize_body(), headers=headers_for(LEGACY, token, proof=proof()))
    if response.status_code != 200:
        raise RuntimeError(f"initialize -> {response.status_code}: {response.text[:300]}")
    session = response.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    acked = client.post(mcp_url, json=note, headers=headers_for(LEGACY, token, session, proof=proof()))
    if acked.status_code != 202:
        raise RuntimeError(f"notifications/initialized -> {acked.status_code}: {acked.text[:300]}")
    return session


def check_tools_call(
    client: httpx2.Client,
    mcp_url: str,
    revision: str,
    token: str | None,
    session: str | None,
    key: DPoPKey | None = None,
) -> None:
    """One tools/call that must succeed: the benchmark measures only requests that work."""
    proof = proof_for(key, mcp_url, token) if key is not None and token is not None else None
    response = client.post(
        mcp_url,
        json=tools_call_body(revision, "check"),
        headers=headers_for(revision, token, session, proof=proof),
    )
    text = echo_text(result_of(response)) if response.status_code == 200 else None
    if text != "check":
        raise RuntimeError(f"tools/call ({revision}) -> {response.status_code}: {response.text[:300]}")
