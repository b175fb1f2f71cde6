"""The `htu` of a DPoP proof, compared with the URL of the request (RFC 9449 section 4.3 step 9).

Both are normalised as RFC 9449 asks, by RFC 3986 section 6.2.2 (syntax) and 6.2.3 (scheme):
scheme and host lower-cased, the scheme's default port dropped, an empty path made "/",
percent-encodings upper-cased and those of unreserved characters decoded, dot segments removed.
So `HTTPS://MCP.Example.com:443/mcp` names `https://mcp.example.com/mcp`, while `/mcp/` and
`/MCP` stay other resources. The proof's `htu` carries no query and no fragment (section 4.2:
the target URI "without query and fragment parts") and no userinfo: any of them, another scheme
than http(s), or a malformed authority makes it unusable. Which URL the request was for is the
caller's decision, from configuration (MCP_PUBLIC_URL, the issuer), never from the Host header.

Written here rather than taken from a library: urllib.parse splits URLs but does not normalise
them, and the normalisation is RFC 3986's few rules.
"""

from __future__ import annotations

import functools
import re
import string
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters a URI may hold (RFC 3986 section 2): anything else (spaces, controls, non-ASCII) makes
# the value not a URI at all.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
MAX_TARGET_LENGTH = 2048


def _percent(match: re.Match[str]) -> str:
    character = chr(int(match.group(1), 16))
    return character if character in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if path.endswith(("/.", "/..")):
        output.append("")
    return "/" + "/".join(output)


@functools.lru_cache(maxsize=1024)
def normalise(uri: str) -> str | None:
    """The normalised form of an absolute http(s) URI without query, fragment and userinfo;
    None for anything else. Cached (bounded): a client sends the same few values again and again."""
    if len(uri) > MAX_TARGET_LENGTH or not _URI_CHARACTERS.fullmatch(uri) or "?" in uri or "#" in uri:
        return None
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    authority = f"[{host}]" if ":" in host else host  # hostname is lower-cased, brackets removed
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    path = _remove_dot_segments(_PERCENT.sub(_percent, parts.path or "/"))
    return f"{scheme}://{authority}{path}"
