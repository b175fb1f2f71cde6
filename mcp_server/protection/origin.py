"""Host and Origin checks (DNS rebinding, cross-site requests) and CORS for the MCP endpoints.

Runs before authentication on /mcp, /sse and the legacy message endpoint, because a browser
page on a hostile origin must be stopped whether or not it managed to obtain a token:
- a `Host` that is not ours -> 421 Misdirected Request (a DNS-rebinding page reaches us under
  its own name); checked when bound to loopback or when ALLOWED_HOSTS is set (behind a proxy
  with no list there is no safe default to enforce). The answer and a warning in the log (once
  per Host value, bounded) name ALLOWED_HOSTS: a tunnel or proxy name is the usual cause;
- an `Origin` that is present and not allowed -> 403 with a JSON-RPC error body and no id
  (MCP transports: servers MUST validate Origin). No Origin (native clients, curl) passes.
Allowed: ALLOWED_HOSTS / ALLOWED_ORIGINS, the public MCP URL's own host and origin, and any
loopback host or origin (any port) when the server is bound to loopback.

CORS for browser-based clients (MCP Inspector's web UI, web apps): allowed origins get their
origin echoed (never `*` on /mcp), preflights are answered here without authentication, and the
headers a client needs to read (WWW-Authenticate for the OAuth challenge, DPoP-Nonce,
Mcp-Session-Id) are exposed, and a `DPoP` proof header may be sent. No credentials mode: the MCP
endpoint uses tokens, never cookies.

Header values reach everything behind this guard without leading or trailing whitespace (RFC 9110
section 5.5): h11 strips it, uvicorn's httptools parser does not, and the SDK compares
`Mcp-Name`/`Mcp-Method` with the body byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.protection._asgi import CannedResponse, jsonrpc_error
from shared.settings import DEFAULT_API_KEY_HEADER, Settings, is_loopback_host

logger = logging.getLogger(__name__)

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
_LOGGED_HOSTS_MAX = 100  # distinct refused Host values logged per process (a flood logs no more)
HOST_REFUSED = "Misdirected request: Host not allowed (the ALLOWED_HOSTS setting lists the names served)"
_OWS = (b" ", b"\t")
ALLOWED_HEADERS = (
    "Authorization",
    "DPoP",
    "Content-Type",
    "Accept",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
)  # and the API-key header (API_KEY_HEADER, X-API-Key by default)
EXPOSED_HEADERS = "WWW-Authenticate, DPoP-Nonce, Mcp-Session-Id, MCP-Protocol-Version, Retry-After"
_PARAM_HEADER_PREFIX = "mcp-param-"  # 2026-07-28 per-argument headers, named by the tool schema


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _hostname(host: str) -> str | None:
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


class OriginPolicy:
    """Which Host and Origin header values this deployment accepts (decided once, at start-up)."""

    def __init__(
        self,
        base_url: str,
        *,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
        binds_loopback: bool = False,
        api_key_header: str = DEFAULT_API_KEY_HEADER,
    ) -> None:
        """`base_url`'s own origin and host are always allowed; a server bound to loopback also
        accepts any loopback origin and host, and always checks the Host header."""
        allowed_hosts = tuple(allowed_hosts)
        self._loopback = binds_loopback
        public = urlsplit(base_url)
        self._origins = frozenset(
            {origin.rstrip("/").lower() for origin in allowed_origins} | {_origin_of(base_url)}
        )
        self._check_host = binds_loopback or bool(allowed_hosts)
        self.allowed_headers = (*ALLOWED_HEADERS, api_key_header)
        self._hosts = frozenset(
            {host.lower() for host in allowed_hosts} | {public.netloc.lower(), (public.hostname or "")}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OriginPolicy:
        return cls(
            settings.mcp_base_url,
            allowed_origins=settings.allowed_origins,
            allowed_hosts=settings.allowed_hosts,
            binds_loopback=settings.binds_loopback,
            api_key_header=settings.api_key_header,
        )

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.lower()
        if origin in self._origins:
            return True
        if not self._loopback:
            return False
        try:
            parts = urlsplit(origin)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return False
        hostname = _hostname(parts.netloc) if parts.scheme in ("http", "https") else None
        return hostname is not None and is_loopback_host(hostname)

    def host_allowed(self, host: str | None) -> bool:
        if not self._check_host:
            return True
        if not host:
            return False
        host = host.lower()
        if host in self._hosts:
            return True
        hostname = _hostname(host)
        if hostname is None:
            return False
        return hostname in self._hosts or (self._loopback and is_loopback_host(hostname))


class OriginGuard:
    """ASGI middleware: refuse foreign Host/Origin, answer CORS preflights, decorate responses."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self._policy = policy
        self._bad_host = CannedResponse(421, jsonrpc_error(HOST_REFUSED))
        self._logged_hosts: set[str] = set()
        self._bad_origin = CannedResponse(403, jsonrpc_error("Forbidden: Origin not allowed"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if any(value[:1] in _OWS or value[-1:] in _OWS for _, value in headers):
            headers = [(name, value.strip(b" \t")) for name, value in headers]
            scope = {**scope, "headers": headers}
        host = origin = preflight_method = requested_headers = None
        for name, value in headers:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight_method = value
            elif name == b"access-control-request-headers":
                requested_headers = value.decode("latin-1")

        if not self._policy.host_allowed(host):
            self._log_refused_host(host)
            await self._bad_host.send(send)
            return
        if origin is None:
            await self.app(scope, receive, send)
            return
        if not self._policy.origin_allowed(origin):
            await self._bad_origin.send(send)
            return

        cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and preflight_method is not None:
            await self._preflight(send, cors, requested_headers)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(cors)
                headers.append((b"access-control-expose-headers", EXPOSED_HEADERS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _log_refused_host(self, host: str | None) -> None:
        shown = (host or "")[:200]
        if shown in self._logged_hosts or len(self._logged_hosts) >= _LOGGED_HOSTS_MAX:
            return
        self._logged_hosts.add(shown)
        logger.warning(
            "421 for Host %r: not a name this server answers to; if clients reach it under that "
            "name (a reverse proxy or tunnel), add it to ALLOWED_HOSTS (a DNS-rebinding page also "
            "looks like this)",
            shown,
        )

    async def _preflight(self, send: Send, cors: list[tuple[bytes, bytes]], requested: str | None) -> None:
        allowed = list(self._policy.allowed_headers)
        for name in (requested or "").split(","):
            name = name.strip()
            if name.lower().startswith(_PARAM_HEADER_PREFIX):
                allowed.append(name)
        headers = [
            *cors,
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", ", ".join(allowed).encode("latin-1")),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
