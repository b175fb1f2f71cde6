"""The protected resources this authorization server issues tokens for (RFC 8707).

Today that is one: the MCP endpoint of this deployment. A request naming any other resource is
refused with `invalid_target`, and a request naming none gets the default, so no token is ever
valid everywhere. To protect more resource servers, add their canonical URIs here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.settings import Settings


def served_resources(settings: Settings) -> tuple[str, ...]:
    """Canonical URIs of every resource tokens may be issued for, the default first."""
    return (settings.mcp_resource_url,)


def default_resource(settings: Settings) -> str:
    """The audience of tokens whose request named no resource (never "unrestricted")."""
    return served_resources(settings)[0]


def is_well_formed_resource(value: str) -> bool:
    """RFC 8707 section 2: an absolute URI without a fragment."""
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and "#" not in value
