"""Building blocks for the authorization-server tests: an app over a given Store, clients written
where the real registry finds them, and authorization codes minted the way /authorize stores
them (for the tests that are about the token endpoint, not about /authorize)."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from starlette.applications import Starlette

from auth_server import crypto
from auth_server.app import create_auth_routes
from auth_server.models import AuthorizationCodeRecord, Client
from auth_server.signing_keys import SigningKeys
from auth_server.tokens import TokenService
from auth_server.users import scrypt_hash
from shared import scopes
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import client_key, code_key

ISSUER = "http://127.0.0.1:3232"  # internal mode: the MCP server's base URL is the issuer
RESOURCE = f"{ISSUER}/mcp"  # the MCP resource, in both modes
EXTERNAL_AUTH_PORT = 3001
EXTERNAL_ISSUER = f"http://127.0.0.1:{EXTERNAL_AUTH_PORT}"  # external mode: the standalone AS
REDIRECT_URI = "http://127.0.0.1:53124/callback"
OTHER_MCP = "http://127.0.0.2:3232"  # another deployment's MCP server (on loopback: still development)
RS_CLIENT_ID = "mcp-resource-server"
RS_CLIENT_SECRET = "rs-secret-for-tests-0123456789-abcdefgh"  # >= 32: a public test passes the check


def oauth_refused(response: httpx2.Response, error: str, status: int = 400) -> str:
    """The token endpoint refused with an OAuth error body (RFC 6749 section 5.2) naming `error`,
    and no token in it: its error_description (empty if none)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    description: str = body.get("error_description", "")
    return description


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_mode": "internal",
        "host": "127.0.0.1",
        "mcp_port": 3232,
        "rate_limit_per_minute": 10_000,
        "introspection_client_id": RS_CLIENT_ID,
        "introspection_client_secret": RS_CLIENT_SECRET,
        "cimd_allow_loopback": True,
    }
    values.update(overrides)
    if values["auth_mode"] == "internal":
        # Internal mode has no built-in introspection client (the MCP server reads the Store):
        # the tests introspect as another resource server would, configured in AUTH_CLIENTS.
        resource_server = {"client_id": RS_CLIENT_ID, "client_secret": RS_CLIENT_SECRET}
        values["auth_clients"] = [
            {**resource_server, "may_introspect": True},
            *values.get("auth_clients", []),
        ]
    return Settings(_env_file=None, **values)


@functools.cache
def public_deployment() -> dict[str, Any]:
    """Overrides that, with an https issuer, take a test server out of development and past the
    start-up check (docs/security.md): an https MCP URL, configured users (no demo user), no
    loopback metadata fetches."""
    return {
        "mcp_public_url": "https://mcp.example.com",
        "auth_users": {"alice": scrypt_hash("alice-password", n=2**10)},
        "cimd_allow_loopback": False,
    }


def build_app(settings: Settings, store: Store) -> Starlette:
    """The real authorization server: every front- and back-channel route over `store`."""
    return Starlette(routes=create_auth_routes(settings, store))


# One TLS context for every test client: httpx builds one per client otherwise (~20 ms each), and
# nothing here speaks TLS anyway.
_TLS = ssl.create_default_context()
_client_numbers = itertools.count()


def client_address() -> str:
    """A loopback address no other test client of this run connects from (127.1.0.1 onwards), so
    per-IP rate limits never count two tests together. (Here, not in conftest.py: pytest imports
    a conftest under a second module name, which would restart the count.)"""
    number = next(_client_numbers)
    return f"127.{1 + number // 62_500 % 250}.{number // 250 % 250}.{1 + number % 250}"


def server_client(server_url: str, *, local_address: str | None = None) -> httpx2.AsyncClient:
    """A client (own cookie jar, own source address) that only ever talks to `server_url`: an
    absolute URL elsewhere (the public issuer's port, say) fails the test instead of leaving."""
    own = httpx2.URL(server_url)

    async def only_to_its_server(request: httpx2.Request) -> None:
        if (request.url.host, request.url.port) != (own.host, own.port):
            raise AssertionError(f"{request.url} is not on the server under test ({server_url})")

    transport = httpx2.AsyncHTTPTransport(local_address=local_address or client_address(), verify=_TLS)
    return httpx2.AsyncClient(
        transport=transport,
        base_url=server_url,
        timeout=10.0,
        event_hooks={"request": [only_to_its_server]},
    )


@dataclass(frozen=True)
class OAuthClient:
    """An OAuth client as a test sees it: its id, and its secret when confidential."""

    client_id: str
    secret: str | None = None

    def auth(self) -> dict[str, Any]:
        """Keyword arguments for a form POST authenticating this client (post or none)."""
        data = {"client_id": self.client_id}
        if self.secret is not None:
            data["client_secret"] = self.secret
        return data

    def basic(self) -> httpx2.BasicAuth:
        assert self.secret is not None
        return httpx2.BasicAuth(self.client_id, self.secret)


async def add_client(
    store: Store,
    *,
    confidential: bool = False,
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
    client_id: str | None = None,
    secret: str | None = None,
    scope: str | None = None,
) -> OAuthClient:
    """Writes a dynamically registered client where `StoreClientRegistry` looks it up."""
    client_id = client_id or f"client-{uuid.uuid4().hex[:12]}"
    if confidential:
        secret = secret or crypto.new_credential()
    client = Client(
        client_id=client_id,
        client_name="Test client",
        redirect_uris=(REDIRECT_URI,),
        grant_types=grant_types,
        token_endpoint_auth_method="client_secret_basic" if confidential else "none",
        client_secret_digest=crypto.digest(secret) if secret else None,
        scope=scope,
        client_id_issued_at=int(time.time()),
    )
    await records.write(store, client_key(client_id), client)
    return OAuthClient(client_id, secret if confidential else None)


def configured_client(**metadata: Any) -> tuple[dict[str, Any], OAuthClient]:
    """An AUTH_CLIENTS entry for a confidential client (pass it in `auth_clients`) and the client
    as a test sees it; machine clients and resource servers exist only this way."""
    client = OAuthClient(f"configured-{uuid.uuid4().hex[:12]}", crypto.new_credential())
    return {"client_id": client.client_id, "client_secret": client.secret, **metadata}, client


def path_of(url: str, expected_base: str | None = None) -> str:
    """The path (and query) of an absolute URL the AS published, to request it from the server
    under test, which listens elsewhere than its public URL (see conftest.py)."""
    if expected_base is not None:
        assert url.startswith(f"{expected_base}/"), f"{url} is not under {expected_base}"
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass(frozen=True)
class IssuedCode:
    code: str
    verifier: str
    grant_id: str


async def store_code(
    store: Store,
    client: OAuthClient,
    *,
    settings: Settings,
    scope: tuple[str, ...] = scopes.CATALOGUE.baseline,
    resource: str = RESOURCE,
    subject: str = "demo",
    challenge: str | None = None,
    issued_at: int | None = None,
    ttl: float | None = None,
    redirect_uri_in_request: bool = True,
) -> IssuedCode:
    """An authorization code exactly as /authorize stores it (`auth:code:{digest}` with TTL)."""
    verifier, default_challenge = pkce_pair()
    code = crypto.new_credential()
    now = int(time.time())
    record = AuthorizationCodeRecord(
        client_id=client.client_id,
        redirect_uri=REDIRECT_URI,
        code_challenge=default_challenge if challenge is None else challenge,
        scopes=scope,
        resource=resource,
        subject=subject,
        auth_time=now,
        issued_at=now if issued_at is None else issued_at,
        grant_id=uuid.uuid4().hex,
        redirect_uri_in_request=redirect_uri_in_request,
    )
    await records.write(
        store, code_key(code), record, ttl=settings.authorization_code_ttl if ttl is None else ttl
    )
    return IssuedCode(code, verifier, record.grant_id)


def code_form(code: IssuedCode, client: OAuthClient, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code.code,
        "code_verifier": code.verifier,
        "redirect_uri": REDIRECT_URI,
        "resource": RESOURCE,
        **client.auth(),
        **extra,
    }


async def redeem(
    http: httpx2.AsyncClient, code: IssuedCode, client: OAuthClient, **extra: str
) -> httpx2.Response:
    return await http.post("/token", data=code_form(code, client, **extra))


async def tokens_for(
    http: httpx2.AsyncClient, store: Store, settings: Settings, client: OAuthClient, **code_kw: Any
) -> dict[str, Any]:
    """A fresh access (and refresh) token pair through the code grant."""
    code = await store_code(store, client, settings=settings, **code_kw)
    response = await redeem(http, code, client)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def expired_access_token(store: Store, settings: Settings, client: OAuthClient) -> str:
    """An access token exactly as the token endpoint stores it, minted by the real TokenService
    on a clock `access_token_ttl` + 5 seconds in the past: its `exp` has passed while its record
    is still stored, so only the server's own expiry check can refuse it (no waiting)."""
    ago = settings.access_token_ttl + 5
    keys = SigningKeys.from_settings(settings, store)
    tokens = TokenService.from_settings(settings, store, keys, clock=lambda: time.time() - ago)
    issued = await tokens.issue(
        client_id=client.client_id,
        subject="demo",
        scopes=scopes.CATALOGUE.baseline,
        resource=RESOURCE,
        grant_id=uuid.uuid4().hex,
    )
    return issued.access_token


async def refresh(
    http: httpx2.AsyncClient, refresh_token: str, client: OAuthClient, **extra: str
) -> httpx2.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **client.auth(), **extra}
    return await http.post("/token", data=data)


async def introspect(http: httpx2.AsyncClient, token: str, **extra: str) -> httpx2.Response:
    return await http.post(
        "/introspect",
        data={"token": token, **extra},
        auth=httpx2.BasicAuth(RS_CLIENT_ID, RS_CLIENT_SECRET),
    )


async def is_active(http: httpx2.AsyncClient, token: str) -> bool:
    response = await introspect(http, token)
    assert response.status_code == 200, response.text
    active: bool = response.json()["active"]
    return active
