"""The client address behind a reverse proxy: believed only from the proxies FORWARDED_ALLOW_IPS names.

Every per-client decision (the rate limits of `auth_server/rate_limit.py`, audit lines, the
loopback-only /metrics) reads `scope["client"]`. Behind a proxy that is the proxy's address, so
all users would share one bucket and one attacker could lock everyone out. This middleware, first
in both app factories, rewrites `scope["client"]` once, so everything after it uses the believed
address without knowing about proxies:

- from a peer FORWARDED_ALLOW_IPS does not name (the default: nobody), the headers are ignored;
- from a trusted peer, the addresses of `X-Forwarded-For` and of RFC 7239 `Forwarded` (`for=`)
  are read right to left, skipping trusted proxies; the first address that is not one is the
  client (the left part of the list is whatever the client sent, so it is never believed; when
  every hop is a trusted proxy, the nearest one is the client);
- when both headers are present and name different clients (a proxy that appends to one passes
  the client's own copy of the other through: nginx forwards a client's `Forwarded` untouched),
  or the entry found is not an IP address (`unknown`, an obfuscated name, garbage), nothing is
  believed and the client stays the proxy. Such requests share the proxy's bucket: no escape.
- `*` trusts every peer: any client can then choose its address. Only for a server that no one
  can reach except through the proxy (docs/operations.md).

Written here rather than reusing uvicorn's ProxyHeadersMiddleware: that one reads only
X-Forwarded-For (not `Forwarded`) and silently turns a malformed FORWARDED_ALLOW_IPS entry into a
literal that never matches; settings validate the entries at start instead. The scheme
(`X-Forwarded-Proto`) is not needed: every URL the servers publish comes from settings.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Iterable, Sequence

from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import Settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_HEADER_BYTES = 8192  # a longer chain is not a proxy's; nothing is believed
# RFC 7239 section 4: element = pair *(";" pair); pair = token "=" (token / quoted-string).
_UNESCAPE = re.compile(r"\\(.)")
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^\s,;"]*)\s*')


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The peers whose forwarding headers are believed (FORWARDED_ALLOW_IPS)."""

    def __init__(self, entries: Iterable[str]) -> None:
        entries = list(entries)
        self.everyone = "*" in entries
        self._networks = tuple(ipaddress.ip_network(entry) for entry in entries if entry != "*")
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def __bool__(self) -> bool:
        return self.everyone or bool(self._networks)

    def _trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        address = _address(host)
        return address is not None and any(address in network for network in self._networks)

    def client(self, hops: Sequence[str]) -> tuple[str, int] | None:
        """The right-most hop that is not a trusted proxy, as (address, port); None when that
        hop is not an IP address (nothing to believe).

        When every hop is trusted, the right-most one (the address the nearest proxy saw), never
        the left-most as uvicorn takes: the left end is whatever the sender wrote, so a host in a
        trusted network could otherwise name itself 127.0.0.1 and pass the loopback-only /metrics.
        """
        if not hops:
            return None
        chosen = hops[-1]
        for hop in reversed(hops):
            host, _ = _split_port(hop)
            if not self.trusts(host):
                chosen = hop
                break
        host, port = _split_port(chosen)
        address = _address(host)
        return None if address is None else (address.compressed, port)


def _split_port(hop: str) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:5678`, `2001:db8::1` -> (host, port or 0)."""
    hop = hop.strip()
    if hop.startswith("["):
        host, _, rest = hop[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif hop.count(":") == 1:
        host, _, port = hop.partition(":")
    else:
        host, port = hop, ""
    return host, int(port) if port.isdigit() and len(port) <= 5 else 0


def x_forwarded_for_hops(values: Sequence[bytes]) -> list[str]:
    """Every address of every X-Forwarded-For line, in order (lines join with commas)."""
    return [hop.strip() for value in values for hop in value.decode("latin-1").split(",") if hop.strip()]


def forwarded_hops(values: Sequence[bytes]) -> list[str] | None:
    """The `for=` value of every element of every Forwarded line, in order; None if malformed."""
    hops: list[str] = []
    for value in values:
        text = value.decode("latin-1")
        position, element_for = 0, None
        while True:
            match = _PAIR.match(text, position)
            if match is None:
                return None
            name, raw = match.group(1).lower(), match.group(2)
            if name == "for":
                element_for = _UNESCAPE.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
            position = match.end()
            if position == len(text):
                break
            separator = text[position]
            position += 1
            if separator == ",":
                hops.append(element_for or "")
                element_for = None
            elif separator != ";":
                return None
        hops.append(element_for or "")
    return hops


class ForwardedHeadersMiddleware:
    """ASGI middleware: `scope["client"]` becomes the address the trusted proxies report."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self._trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and self._trusted.trusts(peer[0]):
                believed = self.believed_client(scope["headers"])
                if believed is not None:
                    scope["client"] = believed  # in place, so uvicorn's access log shows it too
        await self.app(scope, receive, send)

    def believed_client(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, int] | None:
        x_forwarded_for: list[bytes] = []
        forwarded: list[bytes] = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                x_forwarded_for.append(value)
            elif name == b"forwarded":
                forwarded.append(value)
        if sum(map(len, x_forwarded_for)) + sum(map(len, forwarded)) > _MAX_HEADER_BYTES:
            return None
        from_forwarded = forwarded_hops(forwarded) if forwarded else None
        if forwarded and from_forwarded is None:
            return None  # malformed: believe nothing rather than only the other header
        reported: list[tuple[str, int]] = []
        for hops in (x_forwarded_for_hops(x_forwarded_for) if x_forwarded_for else None, from_forwarded):
            if hops is None:
                continue
            client = self._trusted.client(hops)
            if client is None:
                return None
            reported.append(client)
        if not reported or len({address for address, _ in reported}) != 1:
            return None
        return reported[0]


# Headers reverse proxies, CDNs and HTTP tunnels add (nginx, Caddy, ngrok, cloudflared,
# localtunnel, Akamai; `Via` is required of proxies by RFC 9110): a request carrying one was
# relayed from another machine. No local client (a browser, curl, an MCP client) sends them.
RELAY_HEADERS = frozenset(
    {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"forwarded", b"via"}
    | {b"x-real-ip", b"cf-connecting-ip", b"true-client-ip"}
)


class RefuseRelayedRequests:
    """ASGI middleware for a development server whose development defaults are in effect (the
    demo login, the published introspection secret, AUTH_MODE=none): those are for this machine,
    so a request relayed from elsewhere (it carries a forwarding header) gets 421 and nothing else.

    The start-up check cannot see a tunnel that rewrites Host to 127.0.0.1 (ngrok
    --host-header=rewrite, cloudflared --http-host-header): this sees what it adds. A raw TCP
    forward (ssh -R, socat) adds nothing and stays the operator's business (docs/security.md).
    """

    def __init__(self, app: ASGIApp, defaults: Sequence[str]) -> None:
        self.app = app
        self._defaults = ", ".join(defaults)
        self._refusal = JSONResponse(
            {
                "error": "invalid_request",
                "error_description": "this is a development server (development defaults in effect: "
                f"{self._defaults}) reached through a proxy or tunnel; it only answers requests "
                "from its own machine until it is configured for production (docs/security.md)",
            },
            status_code=421,
            headers={"Cache-Control": "no-store"},
        )
        self._logged = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            relayed = next((name for name, _ in scope["headers"] if name in RELAY_HEADERS), None)
            if relayed is not None:
                if not self._logged:
                    self._logged = True
                    logger.warning(
                        "421 for a request relayed by a proxy or tunnel (it carries %s): development "
                        "defaults are in effect (%s), which are for this machine only; configure the "
                        "server for production (docs/security.md) before publishing it",
                        relayed.decode("latin-1"),
                        self._defaults,
                    )
                if scope["type"] == "http":
                    await self._refusal(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


def forwarded_middleware(settings: Settings, development_defaults: Sequence[str] = ()) -> list[Middleware]:
    """The middleware both app factories put first: believe trusted proxies (FORWARDED_ALLOW_IPS),
    and while development defaults are in effect (`development_defaults`, the settings that are
    still at one) refuse relayed requests; nothing at all otherwise."""
    middleware = []
    if development_defaults:
        middleware.append(Middleware(RefuseRelayedRequests, defaults=development_defaults))
    trusted = TrustedProxies(settings.forwarded_allow_ips)
    if trusted:
        middleware.append(Middleware(ForwardedHeadersMiddleware, trusted=trusted))
    return middleware
