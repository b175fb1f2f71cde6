"""The protected resources this authorization server issues tokens for (RFC 8707).

Today that is one: the MCP endpoint of this deployment. A request naming any other resource is
refused with `invalid_target`, and a request naming none gets the default, so no token is ever
valid everywhere. To protect more resource servers, add their canonical URIs here.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from shared.settings import Settings

logger = logging.getLogger(__name__)


def served_resources(settings: Settings) -> tuple[str, ...]:
    """Canonical URIs of every resource tokens may be issued for, the default first."""
    return (settings.mcp_resource_url,)


def is_served(settings: Settings, resource: str) -> bool:
    """Whether tokens may be issued for `resource`; a refusal is logged plainly, because the usual
    cause is a standalone authorization server that derived another MCP URL than the MCP server's
    (MCP_PUBLIC_URL unset, MCP_PORT different), not an attack."""
    if resource in served_resources(settings):
        return True
    source = "MCP_PUBLIC_URL" if settings.mcp_public_url else "MCP_PUBLIC_URL is unset, so HOST and MCP_PORT"
    logger.warning(
        "invalid_target: a client asked for a token for the resource %r, but this authorization "
        "server issues tokens only for %s (%s); if that is your MCP server, set MCP_PUBLIC_URL to "
        "its base URL here too",
        resource[:300],
        " ".join(served_resources(settings)),
        source,
    )
    return False


def default_resource(settings: Settings) -> str:
    """The audience of tokens whose request named no resource (never "unrestricted")."""
    return served_resources(settings)[0]


def is_well_formed_resource(value: str) -> bool:
    """RFC 8707 section 2: an absolute URI without a fragment."""
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and "#" not in value
