"""Where every authorization-server endpoint lives, derived from the issuer in one place.

The AS serves its routes under the issuer's path: issuer `https://h/t1` means `/t1/authorize`,
`/t1/token`, ... and the RFC 8414 path-inserted `/.well-known/oauth-authorization-server/t1`.
So the advertised URLs answer both when the app is reached directly and behind a reverse proxy
that forwards paths unchanged, and metadata, routes and redirects can never disagree.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from shared.settings import Settings

Endpoint = Literal[
    "authorize",
    "token",
    "register",
    "introspect",
    "revoke",
    "jwks",
    "login",
    "consent",
    "account",
    "logout",
    "admin",
]


def issuer_path(settings: Settings) -> str:
    """The issuer's path without a trailing slash: "" for `https://h`, "/t1" for `https://h/t1`."""
    return urlsplit(settings.issuer).path.rstrip("/")


def endpoint_path(settings: Settings, endpoint: Endpoint) -> str:
    """The route path the app serves an endpoint at, e.g. `/t1/token`."""
    return f"{issuer_path(settings)}/{endpoint}"


def endpoint_url(settings: Settings, endpoint: Endpoint) -> str:
    """The absolute URL advertised in metadata, e.g. `https://h/t1/token`."""
    return f"{settings.issuer.rstrip('/')}/{endpoint}"


def path_inserted_well_known(settings: Settings, suffix: str) -> str:
    """RFC 8414 section 3.1: the well-known suffix goes between the host and the issuer's path."""
    return f"/.well-known/{suffix}{issuer_path(settings)}"


def path_appended_well_known(settings: Settings, suffix: str) -> str:
    """OpenID Connect Discovery: the suffix goes after the issuer's path (same as inserted for a
    root issuer)."""
    return f"{issuer_path(settings)}/.well-known/{suffix}"
