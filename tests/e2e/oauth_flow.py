"""The OAuth flow done by hand over HTTP (discovery, DCR, PKCE, login, token, refresh, revoke).

Tests use it where the client under test is not a Python client (the conformance suite needs a
token minted by the real flow) and to cross-check what the SDK client did (the raw 401/403
challenges, revocation). Every step asserts on the status it gets, with the body in the message.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2

from tests.e2e.login_driver import DEMO_USER, AuthorizationResponse, authorize
from tests.fixtures.dpop_client import DPoPKey

LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"


@dataclass
class Discovery:
    prm: dict[str, Any]
    metadata: dict[str, Any]

    @property
    def issuer(self) -> str:
        return str(self.metadata["issuer"])


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None
    scope: str
    expires_in: int | None
    raw: dict[str, Any]


@dataclass
class RegisteredClient:
    client_id: str
    redirect_uri: str
    client_secret: str | None = None


def _check(response: httpx2.Response, *statuses: int) -> httpx2.Response:
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url} -> {response.status_code}, "
        f"expected {statuses}: {response.text[:1000]}"
    )
    return response


def http() -> httpx2.Client:
    return httpx2.Client(timeout=15.0, trust_env=False, follow_redirects=False)


def discover(mcp_url: str) -> Discovery:
    """RFC 9728 (path-inserted well-known) then RFC 8414 for the first authorization server."""
    parts = urlsplit(mcp_url)
    prm_url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    with http() as client:
        prm = _check(client.get(prm_url), 200).json()
        issuer = prm["authorization_servers"][0]
        ip = urlsplit(issuer)
        meta_url = f"{ip.scheme}://{ip.netloc}/.well-known/oauth-authorization-server{ip.path.rstrip('/')}"
        metadata = _check(client.get(meta_url), 200).json()
    assert metadata["issuer"] == issuer, f"issuer mismatch: PRM says {issuer}, metadata {metadata['issuer']}"
    return Discovery(prm, metadata)


def register(disc: Discovery, redirect_uri: str, name: str = "e2e raw client") -> RegisteredClient:
    body = {
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    }
    with http() as client:
        reg = _check(client.post(disc.metadata["registration_endpoint"], json=body), 201).json()
    return RegisteredClient(reg["client_id"], redirect_uri, reg.get("client_secret"))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_url(
    disc: Discovery,
    client_id: str,
    redirect_uri: str,
    *,
    scope: str,
    resource: str,
    state: str,
    challenge: str,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
    }
    return f"{disc.metadata['authorization_endpoint']}?{urlencode(params)}"


def _proof(disc: Discovery, dpop: DPoPKey | None) -> dict[str, str]:
    """The token request's DPoP header (RFC 9449 section 5), when the client has a key."""
    return {} if dpop is None else {"DPoP": dpop.proof("POST", disc.metadata["token_endpoint"])}


def exchange_code(
    disc: Discovery,
    client: RegisteredClient,
    code: str,
    verifier: str,
    resource: str,
    *,
    dpop: DPoPKey | None = None,
) -> Tokens:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "client_id": client.client_id,
        "code_verifier": verifier,
        "resource": resource,
    }
    with http() as http_client:
        response = http_client.post(disc.metadata["token_endpoint"], data=form, headers=_proof(disc, dpop))
        body = _check(response, 200).json()
    return _tokens(body, dpop=dpop is not None)


def refresh(
    disc: Discovery,
    client: RegisteredClient,
    refresh_token: str,
    resource: str,
    *,
    dpop: DPoPKey | None = None,
) -> Tokens:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
        "resource": resource,
    }
    with http() as http_client:
        response = http_client.post(disc.metadata["token_endpoint"], data=form, headers=_proof(disc, dpop))
        body = _check(response, 200).json()
    return _tokens(body, dpop=dpop is not None)


def revoke(disc: Discovery, client_id: str, token: str, hint: str | None = None) -> None:
    form = {"token": token, "client_id": client_id}
    if hint:
        form["token_type_hint"] = hint
    with http() as http_client:
        _check(http_client.post(disc.metadata["revocation_endpoint"], data=form), 200)


def _tokens(body: dict[str, Any], *, dpop: bool = False) -> Tokens:
    assert body.get("token_type", "").lower() == ("dpop" if dpop else "bearer"), body
    return Tokens(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        scope=body.get("scope", ""),
        expires_in=body.get("expires_in"),
        raw=body,
    )


@dataclass
class MintedGrant:
    discovery: Discovery
    client: RegisteredClient
    tokens: Tokens
    authorization: AuthorizationResponse


def mint(
    mcp_url: str,
    *,
    scope: str | None = None,
    user: tuple[str, str] = DEMO_USER,
    redirect_uri: str = "http://127.0.0.1:9/callback",
    dpop: DPoPKey | None = None,
) -> MintedGrant:
    """The whole interactive flow, headless: a token for `user` bound to `mcp_url` (and, with
    `dpop`, DPoP-bound to that key)."""
    disc = discover(mcp_url)
    client = register(disc, redirect_uri)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    wanted = scope if scope is not None else " ".join(disc.prm.get("scopes_supported", []))
    url = authorization_url(
        disc, client.client_id, redirect_uri, scope=wanted, resource=mcp_url, state=state, challenge=challenge
    )
    result = authorize(url, username=user[0], password=user[1])
    assert result.error is None, f"authorization failed: {result.redirect_url}"
    assert result.state == state, f"state not echoed: {result.state!r} != {state!r}"
    assert result.iss == disc.issuer, f"iss {result.iss!r} != issuer {disc.issuer!r}"
    assert result.code, result.redirect_url
    tokens = exchange_code(disc, client, result.code, verifier, mcp_url, dpop=dpop)
    return MintedGrant(disc, client, tokens, result)


def mcp_headers(token: str | None, version: str = LEGACY_VERSION) -> dict[str, str]:
    """The headers of a raw JSON-RPC POST to /mcp, with `token` as a Bearer token when given."""
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": version,
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def initialize_request(
    version: str = LEGACY_VERSION, *, name: str = "e2e-raw", id: int = 1
) -> dict[str, Any]:
    """The JSON-RPC `initialize` request of the 2025 handshake."""
    return {
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": name, "version": "0"},
        },
    }


def initialize(mcp_url: str, token: str | None, version: str = LEGACY_VERSION) -> httpx2.Response:
    """One raw `initialize` POST (2025 handshake): 200 when the token is good, 401/403 otherwise."""
    with http() as client:
        return client.post(mcp_url, json=initialize_request(version), headers=mcp_headers(token, version))


def parse_challenge(header: str) -> dict[str, str]:
    """The auth-params of a `WWW-Authenticate: Bearer ...` challenge."""
    scheme, _, rest = header.partition(" ")
    assert scheme.lower() == "bearer", f"not a Bearer challenge: {header!r}"
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = i + 1
            value = []
            while end < len(rest) and rest[end] != '"':
                if rest[end] == "\\":
                    end += 1
                value.append(rest[end])
                end += 1
            params[name] = "".join(value)
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
    return params
