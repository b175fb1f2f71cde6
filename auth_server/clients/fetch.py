"""Fetching a small document from a URL an attacker chose, without becoming their proxy (SSRF).

The authorization server fetches client ID metadata documents from URLs that arrive in
/authorize requests, so the URL is attacker-controlled. The defences, in order:

1. the host must be a DNS name or a canonical IP literal (no `2130706433`, `0x7f.1`, `127.1`:
   forms that resolvers and parsers disagree on);
2. the name is resolved once, and every address it resolves to must be a public unicast
   address (no loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT, ULA, multicast,
   reserved, and no IPv4 hidden in IPv4-mapped / 6to4 / Teredo IPv6 addresses);
3. the connection goes to that vetted address (DNS pinning): the request URL carries the IP,
   the `Host` header the name, and for https the TLS SNI and certificate check use the name
   (httpcore's `sni_hostname` extension), so a rebinding DNS server gets no second answer;
4. no redirects, no proxies from the environment, no content encodings (no decompression
   bombs), a byte cap enforced while streaming, and one deadline for the whole exchange,
   so a slow-drip server cannot hold a worker.

Loopback targets are allowed only when the caller opts in (development and tests), and only for
the literal hosts `127.0.0.1`, `[::1]` and `localhost`: a DNS name that happens to resolve to
127.0.0.1 is still refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2

from auth_server.redirect_uris import AmbiguousHost, canonical_host, split_host_port
from shared import tracing

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

LOOPBACK_LITERALS = frozenset({"127.0.0.1", "::1", "localhost"})
USER_AGENT = "mcp-reference-server-authorization-server (client metadata fetcher)"


class FetchRefused(Exception):
    """The document could not be fetched safely; the message is fit to show a user."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL split into the parts a pinned request needs."""

    scheme: str
    host: str  # lower-case name, or an IP literal without brackets
    port: int
    authority: str  # the `Host` header: host[:port] exactly as the URL gave it
    path_and_query: str


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    body: bytes
    cache_control: str | None


async def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver, asynchronously (getaddrinfo in the event loop's executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_target(url: str) -> Target:
    """Split an http(s) URL, refusing userinfo, bad ports and ambiguous host spellings."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchRefused("the URL must be an absolute http(s) URL")
    if "@" in parts.netloc:
        raise FetchRefused("the URL must not contain userinfo")
    raw_host, raw_port = split_host_port(parts.netloc)
    if raw_port is not None and not (raw_port.isascii() and raw_port.isdigit() and 0 < int(raw_port) < 65536):
        raise FetchRefused("the URL has an invalid port")
    port = int(raw_port) if raw_port else (443 if parts.scheme == "https" else 80)
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, _canonical_host(raw_host), port, parts.netloc, path_and_query)


def _canonical_host(raw: str) -> str:
    try:
        return canonical_host(raw)
    except AmbiguousHost as exc:
        raise FetchRefused(str(exc)) from None


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses, looking inside IPv6 wrappers."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(address.ipv4_mapped)
        embedded = [address.sixtofour, *(address.teredo or ())]
        if any(inner is not None and not is_public_address(inner) for inner in embedded):
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


async def vetted_address(target: Target, *, allow_loopback: bool, resolver: Resolver) -> str:
    """The address to connect to, after checking every address the host resolves to."""
    loopback_allowed = allow_loopback and target.host in LOOPBACK_LITERALS
    if target.scheme != "https" and not loopback_allowed:
        raise FetchRefused("the URL must use https")
    try:
        answers = [ipaddress.ip_address(target.host)]
    except ValueError:
        try:
            answers = [
                ipaddress.ip_address(answer.split("%")[0])
                for answer in await resolver(target.host, target.port)
            ]
        except (OSError, ValueError):
            raise FetchRefused(f"the host {target.host!r} could not be resolved") from None
    if not answers:
        raise FetchRefused(f"the host {target.host!r} could not be resolved")
    for address in answers:
        acceptable = address.is_loopback if loopback_allowed else is_public_address(address)
        if not acceptable:
            raise FetchRefused(f"the host {target.host!r} resolves to a non-public address")
    return str(answers[0])


async def fetch_document(
    target: Target,
    *,
    max_bytes: int,
    time_limit: float,
    allow_loopback: bool = False,
    resolver: Resolver = system_resolver,
) -> FetchedDocument:
    """GET the target within `time_limit` seconds overall; only a 200 of at most `max_bytes`."""
    try:
        async with asyncio.timeout(time_limit):
            address = await vetted_address(target, allow_loopback=allow_loopback, resolver=resolver)
            return await _get_pinned(target, address, max_bytes=max_bytes, time_limit=time_limit)
    except TimeoutError:
        raise FetchRefused(f"fetching the document took longer than {time_limit:g} s") from None


async def _get_pinned(target: Target, address: str, *, max_bytes: int, time_limit: float) -> FetchedDocument:
    host_in_url = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{host_in_url}:{target.port}{target.path_and_query}"
    headers = {
        "Host": target.authority,
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": USER_AGENT,
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    # A host the client chose: traced, but no trace context or baggage is sent there.
    async with tracing.http_client(trusted_peer=False, trust_env=False, timeout=time_limit) as client:
        request = client.build_request("GET", url, headers=headers, extensions=extensions)
        try:
            response = await client.send(request, stream=True)
        except httpx2.HTTPError as exc:
            raise FetchRefused(f"the document could not be fetched ({type(exc).__name__})") from None
        try:
            return await _read_capped(response, max_bytes)
        except httpx2.HTTPError as exc:
            raise FetchRefused(f"the document could not be read ({type(exc).__name__})") from None
        finally:
            await response.aclose()


async def _read_capped(response: httpx2.Response, max_bytes: int) -> FetchedDocument:
    if 300 <= response.status_code < 400:
        raise FetchRefused(
            f"the server answered with a redirect ({response.status_code}); redirects are not followed"
        )
    if response.status_code != 200:
        raise FetchRefused(f"the server answered HTTP {response.status_code}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchRefused("the document must not be content-encoded")
    too_large = FetchRefused(f"the document is larger than {max_bytes} bytes")
    declared = response.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return FetchedDocument(bytes(body), response.headers.get("cache-control"))
