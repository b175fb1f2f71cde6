r"""Redirect URI rules: which URIs a client may register, and when a requested one matches.

Redirect URIs are where codes go, so both checks are strict (OAuth 2.1 sections 2.3 and 4.1.1,
RFC 9700 section 2.1, RFC 8252 section 7.3):

* a registrable URI is absolute, https (or plain http to a loopback address, which never leaves
  the machine), has no fragment and no userinfo; `javascript:`, `data:`, `file:`, custom schemes
  and other plain http are refused;
* and it reads the same to a browser as to this server (`urlsplit`): ASCII only (an IRI's Unicode
  is percent-encoded or punycode first), no backslash (WHATWG URL parsers take `\` for `/`, so
  `https://good.example\@evil.example` is evil.example to a browser), no control characters, and
  a host that is an LDH DNS name, a dotted-quad IPv4 address or a bracketed IPv6 address: no
  percent-encoded hosts, no `0x7f.1` or `2130706433` numbers a browser turns into an address.
  Pages show `display_host`, the host as parsed here (punycode stays punycode, so a look-alike
  Unicode name cannot pass for the real one);
* except a private-use scheme the operator allows for native apps (RFC 8252 section 7.1,
  NATIVE_REDIRECT_SCHEMES, e.g. Cursor's `cursor://anysphere.cursor-mcp/oauth/callback`): the
  settings refuse web and script schemes there, and client registration takes such URIs only
  from `application_type: native` clients (clients/metadata.py);
* a requested URI matches a registered one only by exact string comparison, except that a
  loopback http URI may differ in its port (native apps get an ephemeral port from the OS).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from urllib.parse import urlsplit

from shared.settings import NEVER_NATIVE_SCHEMES

LOOPBACK_REDIRECT_HOSTS = frozenset({"127.0.0.1", "[::1]", "localhost"})
MAX_REDIRECT_URI_LENGTH = 2000
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class UnacceptableRedirectUri(ValueError):
    """The URI can never be a redirect URI; the message says why, for the error description."""


class AmbiguousHost(ValueError):
    """A URL host that parsers disagree on, or that is no host at all; the message says which."""


def canonical_host(raw: str) -> str:
    """The host of an authority (`split_host_port`'s host) in the one spelling every parser reads
    alike: a lower-case LDH DNS name, a dotted-quad IPv4 address, or an IPv6 address (returned
    without brackets); AmbiguousHost for anything else (percent-encoding, Unicode, `0x7f.1`,
    `127.1`, `2130706433`, a zone id, an empty label)."""
    if raw.startswith("[") and raw.endswith("]"):
        if "%" in raw:
            raise AmbiguousHost("the URL's IPv6 address must not carry a zone")
        try:
            return str(ipaddress.IPv6Address(raw[1:-1]))
        except ValueError:
            raise AmbiguousHost("the URL has an invalid IPv6 address") from None
    host = raw.lower()
    labels = host.split(".")
    if not host.isascii() or not all(_LABEL.match(label) for label in labels):
        raise AmbiguousHost("the URL's host is not a valid DNS name or IP address")
    if _NUMERIC_LABEL.match(labels[-1]):
        # WHATWG URL parsers read such hosts as IPv4 in many spellings; accept only dotted-quad.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise AmbiguousHost("the URL's host is a non-canonical IP address") from None
    return host


def display_host(uri: str) -> str:
    """What a page names as the destination of `uri`: its host (and port) as parsed here.

    For a checked redirect URI this is the canonical host a browser would also connect to; for
    anything that does not parse, the raw authority (never more convincing than the URI itself).
    """
    parts = urlsplit(uri)
    host, port = split_host_port(parts.netloc)
    try:
        canonical = canonical_host(host)
    except AmbiguousHost:
        return parts.netloc
    shown = f"[{canonical}]" if ":" in canonical else canonical
    return f"{shown}:{port}" if port else shown


def check_registrable(uri: str, native_schemes: Collection[str] = ()) -> None:
    """Raise UnacceptableRedirectUri unless `uri` may be registered as a redirect URI.

    `native_schemes` (NATIVE_REDIRECT_SCHEMES) are the private-use schemes also accepted; whether
    the client is a native app is the caller's check.
    """
    if not uri or len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise UnacceptableRedirectUri("a redirect URI must be a non-empty string of at most 2000 characters")
    if not uri.isascii() or any(ch <= " " or ch == "\x7f" for ch in uri):
        raise UnacceptableRedirectUri(
            "a redirect URI must be ASCII without spaces or control characters (percent-encode the rest)"
        )
    if "\\" in uri:
        raise UnacceptableRedirectUri("a redirect URI must not contain a backslash (browsers read it as /)")
    if "#" in uri:
        raise UnacceptableRedirectUri("a redirect URI must not contain a fragment")
    parts = urlsplit(uri)
    if is_private_use_redirect(uri, native_schemes):
        if not (parts.netloc or parts.path.strip("/")):
            raise UnacceptableRedirectUri(
                "a private-use scheme redirect URI needs a path, e.g. app:/callback"
            )
        if "@" in parts.netloc:
            raise UnacceptableRedirectUri("a redirect URI must not contain userinfo")
        return
    if parts.scheme not in ("http", "https", "") and parts.scheme not in NEVER_NATIVE_SCHEMES:
        raise UnacceptableRedirectUri(
            f"the redirect URI scheme {parts.scheme} is not allowed here; an operator lets native "
            f"apps use it by adding {parts.scheme} to the NATIVE_REDIRECT_SCHEMES setting"
        )
    if not parts.scheme or not parts.netloc:
        raise UnacceptableRedirectUri("a redirect URI must be absolute (scheme and host)")
    if "@" in parts.netloc:
        raise UnacceptableRedirectUri("a redirect URI must not contain userinfo")
    host, port = split_host_port(parts.netloc)
    if port is not None and not _is_port(port):
        raise UnacceptableRedirectUri("a redirect URI has an invalid port")
    try:
        canonical_host(host)
    except AmbiguousHost as exc:
        raise UnacceptableRedirectUri(f"a redirect URI needs an unambiguous host: {exc}") from None
    if uri.startswith("https://"):
        return
    if uri.startswith("http://") and host.lower() in LOOPBACK_REDIRECT_HOSTS:
        return
    raise UnacceptableRedirectUri(
        "a redirect URI must use https, or http to a loopback address (127.0.0.1, [::1], localhost)"
    )


def is_private_use_redirect(uri: str, native_schemes: Collection[str]) -> bool:
    """True for a URI whose scheme is one of the allowed private-use `native_schemes`."""
    scheme, colon, _ = uri.partition(":")
    scheme = scheme.lower()
    return bool(colon) and scheme in native_schemes and scheme not in NEVER_NATIVE_SCHEMES


def is_loopback_redirect(uri: str) -> bool:
    """True for plain-http redirect URIs to this machine (RFC 8252 section 7.3)."""
    if not uri.startswith("http://"):
        return False
    host, _ = split_host_port(urlsplit(uri).netloc)
    return host.lower() in LOOPBACK_REDIRECT_HOSTS


def find_match(requested: str, registered: tuple[str, ...]) -> str | None:
    """The registered URI `requested` matches, or None.

    Exact string comparison (no case, slash or query normalisation); for a registered loopback
    http URI, the port alone may differ (and may be absent on either side).
    """
    if requested in registered:
        return requested
    for candidate in registered:
        if is_loopback_redirect(candidate) and _same_except_port(requested, candidate):
            return candidate
    return None


def split_host_port(netloc: str) -> tuple[str, str | None]:
    """Split `host[:port]` without normalising the host (IPv6 literals keep their brackets)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            return netloc, None
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else None
    host, sep, port = netloc.rpartition(":")
    return (host, port) if sep else (netloc, None)


def _same_except_port(requested: str, registered: str) -> bool:
    if not requested.startswith("http://") or "#" in requested:
        return False
    want, got = urlsplit(registered), urlsplit(requested)
    if "@" in got.netloc:
        return False
    want_host, _ = split_host_port(want.netloc)
    got_host, got_port = split_host_port(got.netloc)
    if got_port is not None and not _is_port(got_port):
        return False
    return (got_host, got.path, got.query) == (want_host, want.path, want.query) and (
        requested.count("?") == registered.count("?")  # "cb?" and "cb" are different URIs
    )


def _is_port(value: str) -> bool:
    return value.isascii() and value.isdigit() and 0 < int(value) < 65536
