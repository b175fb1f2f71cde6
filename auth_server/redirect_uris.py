"""Redirect URI rules: which URIs a client may register, and when a requested one matches.

Redirect URIs are where codes go, so both checks are strict (OAuth 2.1 sections 2.3 and 4.1.1,
RFC 9700 section 2.1, RFC 8252 section 7.3):

* a registrable URI is absolute, https (or plain http to a loopback address, which never leaves
  the machine), has no fragment and no userinfo; `javascript:`, `data:`, `file:`, custom schemes
  and other plain http are refused;
* except a private-use scheme the operator allows for native apps (RFC 8252 section 7.1,
  NATIVE_REDIRECT_SCHEMES, e.g. Cursor's `cursor://anysphere.cursor-mcp/oauth/callback`): the
  settings refuse web and script schemes there, and client registration takes such URIs only
  from `application_type: native` clients (client_validation.py);
* a requested URI matches a registered one only by exact string comparison, except that a
  loopback http URI may differ in its port (native apps get an ephemeral port from the OS).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from shared.settings import NEVER_NATIVE_SCHEMES

LOOPBACK_REDIRECT_HOSTS = frozenset({"127.0.0.1", "[::1]", "localhost"})
MAX_REDIRECT_URI_LENGTH = 2000


class UnacceptableRedirectUri(ValueError):
    """The URI can never be a redirect URI; the message says why, for the error description."""


def check_registrable(uri: str, native_schemes: Collection[str] = ()) -> None:
    """Raise UnacceptableRedirectUri unless `uri` may be registered as a redirect URI.

    `native_schemes` (NATIVE_REDIRECT_SCHEMES) are the private-use schemes also accepted; whether
    the client is a native app is the caller's check.
    """
    if not uri or len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise UnacceptableRedirectUri("a redirect URI must be a non-empty string of at most 2000 characters")
    if any(ch <= " " or ch == "\x7f" for ch in uri):
        raise UnacceptableRedirectUri("a redirect URI must not contain spaces or control characters")
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
    if not parts.scheme or not parts.netloc:
        raise UnacceptableRedirectUri("a redirect URI must be absolute (scheme and host)")
    if "@" in parts.netloc:
        raise UnacceptableRedirectUri("a redirect URI must not contain userinfo")
    host, port = split_host_port(parts.netloc)
    if port is not None and not _is_port(port):
        raise UnacceptableRedirectUri("a redirect URI has an invalid port")
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
