"""Real deployments of several processes for the resilience tests, and a client-side load balancer.

`start_cluster` starts what an operator would run behind a load balancer: N `python -m mcp_server`
instances (and, in external mode, one `python -m auth_server`) sharing one Redis under one key
prefix and one public URL (`MCP_PUBLIC_URL`, instance 0's address: tokens are minted for that
audience and every instance accepts it). Each process is the project's real entry point on its
own 127.0.0.1 port, with a log file, stopped at the end (SIGINT, then kill).

`RoundRobin` plays the load balancer *without* affinity: an httpx transport that sends each
request for the public address to the next instance in turn (the Host header stays the public
one, as behind a real proxy). Both the sync flavour (the login driver, OAuth calls) and the async
one (the MCP SDK client) count what each instance served, so a test can prove the alternation.

`mint` runs the whole OAuth flow (discovery, registration, PKCE, login, consent, code exchange)
over any `httpx2.Client`, so every step can land on a different instance.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from shared.scopes import CATALOGUE
from tests.e2e.login_driver import DEMO_USER, authorize
from tests.e2e.servers import BASE_ENV, PYTHON, Mode, clean_environ, free_port
from tests.fixtures.launch import ServerProcess  # launch() now, wait_healthy() later: parallel boots

REQUEST_STATE_KEY = "resilience-request-state-key-" + "0123456789abcdef" * 2
CALLBACK = "http://127.0.0.1:9/callback"
ACCEPT = "application/json, text/event-stream"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
TIMEOUT = httpx2.Timeout(15.0)


@dataclass
class Cluster:
    mode: Mode
    workdir: Path
    env: dict[str, str]
    ports: list[int]
    auth_port: int | None
    instances: list[ServerProcess] = field(default_factory=list)
    auth: ServerProcess | None = None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    @property
    def mcp_url(self) -> str:
        """The canonical resource URL (the audience of every token)."""
        return f"{self.public_url}/mcp"

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.auth_port}" if self.auth_port else self.public_url

    @property
    def processes(self) -> list[ServerProcess]:
        return ([self.auth] if self.auth else []) + self.instances

    def start(self) -> Cluster:
        try:
            if self.auth is not None:
                self.auth.start()
            for process in self.instances:  # side by side: every process launched, then waited for
                process.launch()
            for process in self.instances:
                process.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} log ---\n{p.log_tail()}" for p in self.processes)

    def log_text(self) -> str:
        """Every process's whole log, for assertions on what was (not) written."""
        return "\n".join(
            p.log_path.read_text(errors="replace") for p in self.processes if p.log_path.exists()
        )


def build_cluster(
    mode: Mode,
    workdir: Path,
    *,
    redis_url: str | None,
    instances: int = 2,
    env: Mapping[str, str] | None = None,
) -> Cluster:
    """Describe (not start) a cluster; `redis_url=None` means in-memory storage (one instance)."""
    ports = [free_port() for _ in range(instances)]
    auth_port = free_port() if mode == "external" else None
    settings_env: dict[str, str] = {
        **BASE_ENV,
        "AUTH_MODE": mode,
        "MCP_PORT": str(ports[0]),
        "MCP_PUBLIC_URL": f"http://127.0.0.1:{ports[0]}",
        "INTROSPECTION_CLIENT_ID": "resilience-rs",
        "INTROSPECTION_CLIENT_SECRET": f"resilience-secret-{uuid.uuid4().hex}",
        "REQUEST_STATE_KEYS": json.dumps([REQUEST_STATE_KEY]),
    }
    if auth_port is not None:
        settings_env["AUTH_PORT"] = str(auth_port)
    if redis_url is not None:
        settings_env["REDIS_URL"] = redis_url
        settings_env["REDIS_KEY_PREFIX"] = f"res:{uuid.uuid4().hex[:12]}:"
    settings_env.update(env or {})
    full_env = clean_environ(settings_env)
    cluster = Cluster(mode, workdir, settings_env, ports, auth_port)
    if auth_port is not None:
        cluster.auth = ServerProcess(
            "auth_server",
            [PYTHON, "-m", "auth_server"],
            full_env,
            f"http://127.0.0.1:{auth_port}/healthz",
            workdir,
        )
    for index, port in enumerate(ports):
        cluster.instances.append(
            ServerProcess(
                f"mcp_server_{index}",
                [PYTHON, "-m", "mcp_server", "--port", str(port)],
                full_env,
                f"http://127.0.0.1:{port}/healthz",
                workdir,
            )
        )
    return cluster


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


# --- the load balancer ------------------------------------------------------------------------


class RoundRobin:
    """Picks the next instance for every request addressed to the public port."""

    def __init__(self, cluster: Cluster) -> None:
        self._public_port = cluster.ports[0]
        self._ports = list(cluster.ports)
        self._next = 0
        self._lock = threading.Lock()
        self.served: Counter[int] = Counter()  # instance index -> requests sent to it
        self.routed: list[tuple[int, str]] = []  # (instance index, Mcp-Name header) in order

    def route(self, request: httpx2.Request) -> None:
        if request.url.port != self._public_port:
            return  # the standalone auth server, or anything else: not balanced
        with self._lock:
            index = self._next % len(self._ports)
            self._next += 1
        self.served[index] += 1
        self.routed.append((index, request.headers.get("mcp-name", "")))
        request.url = request.url.copy_with(port=self._ports[index])

    def transport(self) -> httpx2.BaseTransport:
        return _SyncRoundRobin(self)

    def async_transport(self) -> httpx2.AsyncBaseTransport:
        return _AsyncRoundRobin(self)


class _SyncRoundRobin(httpx2.BaseTransport):
    def __init__(self, balancer: RoundRobin) -> None:
        self._balancer = balancer
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self._balancer.route(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _AsyncRoundRobin(httpx2.AsyncBaseTransport):
    def __init__(self, balancer: RoundRobin) -> None:
        self._balancer = balancer
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._balancer.route(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def http_client(transport: httpx2.BaseTransport | None = None) -> httpx2.Client:
    return httpx2.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=False, transport=transport)


# --- the OAuth flow over a chosen client --------------------------------------------------------


@dataclass
class Minted:
    client_id: str
    access_token: str
    refresh_token: str | None
    metadata: dict[str, Any]


def _ok(response: httpx2.Response, *statuses: int) -> httpx2.Response:
    assert response.status_code in statuses, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:800]}"
    )
    return response


def metadata(http: httpx2.Client, cluster: Cluster) -> dict[str, Any]:
    """RFC 9728 then RFC 8414, as a client would discover them from the resource URL."""
    prm = _ok(http.get(f"{cluster.public_url}/.well-known/oauth-protected-resource/mcp"), 200).json()
    issuer = prm["authorization_servers"][0]
    parts = urlsplit(issuer)
    url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"
    document: dict[str, Any] = _ok(http.get(url), 200).json()
    return document


def register(http: httpx2.Client, meta: Mapping[str, Any], name: str = "resilience client") -> str:
    body = {
        "client_name": name,
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    client_id: str = _ok(http.post(meta["registration_endpoint"], json=body), 201).json()["client_id"]
    return client_id


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_code(
    http: httpx2.Client,
    cluster: Cluster,
    meta: Mapping[str, Any],
    client_id: str,
    challenge: str,
    user: tuple[str, str] = DEMO_USER,
    scope: str | None = None,
) -> str:
    """Log in and consent (through `http`, so cookies and instances are whatever it uses); the
    scope defaults to every scope there is (notes:write included)."""
    state = secrets.token_urlsafe(12)
    if scope is None:
        scope = " ".join(CATALOGUE.names)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": cluster.mcp_url,
    }
    result = authorize(
        f"{meta['authorization_endpoint']}?{urlencode(query)}",
        username=user[0],
        password=user[1],
        client=http,
    )
    assert result.error is None, result.redirect_url
    assert result.code, result.redirect_url
    assert result.state == state
    return result.code


def token_request(http: httpx2.Client, meta: Mapping[str, Any], form: Mapping[str, str]) -> httpx2.Response:
    return http.post(meta["token_endpoint"], data=dict(form))


def mint(
    cluster: Cluster,
    http: httpx2.Client,
    user: tuple[str, str] = DEMO_USER,
    scope: str | None = None,
) -> Minted:
    meta = metadata(http, cluster)
    client_id = register(http, meta)
    verifier, challenge = pkce()
    code = authorization_code(http, cluster, meta, client_id, challenge, user, scope)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "code_verifier": verifier,
        "resource": cluster.mcp_url,
    }
    body = _ok(token_request(http, meta, form), 200).json()
    return Minted(client_id, body["access_token"], body.get("refresh_token"), meta)


# --- MCP over plain HTTP ------------------------------------------------------------------------

_ids = iter(range(1, 1 << 30))


def modern_call(
    tool: str, arguments: Mapping[str, Any] | None = None, token: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 tools/call body and its headers (stateless: no session, no initialize)."""
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": dict(arguments or {}),
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "resilience", "version": "1"},
            },
        },
    }
    headers = {
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": tool,
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return body, headers


def rpc_result(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of a 200 answer, whether sent as JSON or as one SSE event."""
    assert response.status_code == 200, (response.status_code, response.text[:800])
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        messages = [json.loads(d) for d in data if d]
        text = json.dumps(next(m for m in messages if "result" in m or "error" in m))
    message: dict[str, Any] = json.loads(text)
    assert "result" in message, message
    result: dict[str, Any] = message["result"]
    return result


def structured(result: Mapping[str, Any]) -> dict[str, Any]:
    assert not result.get("isError"), result
    content = result.get("structuredContent")
    if isinstance(content, dict):
        return content
    return dict(json.loads(result["content"][0]["text"]))


async def call(http: httpx2.AsyncClient, url: str, token: str, tool: str, **arguments: Any) -> dict[str, Any]:
    body, headers = modern_call(tool, arguments, token)
    return rpc_result(await http.post(url, json=body, headers=headers))


@contextlib.asynccontextmanager
async def sdk_client(
    url: str, token: str, revision: str, transport: httpx2.AsyncBaseTransport | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """The MCP SDK's own client with a fixed bearer token, over any transport."""
    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {token}"}, timeout=TIMEOUT, trust_env=False, transport=transport
    )
    async with http:
        mode = "legacy" if revision == LEGACY else revision
        async with Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client:
            yield client
