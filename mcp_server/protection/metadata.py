"""RFC 9728 protected resource metadata: how a client finds out where to get a token for /mcp.

Served at the path-inserted location `/.well-known/oauth-protected-resource/mcp` (what the
`resource_metadata` of every challenge points to) and at the root `/.well-known/oauth-protected-resource`
for clients that only try that. No authentication, open CORS (a browser-based client on any
origin must be able to read it) and an OPTIONS preflight answer.

`resource` is byte-for-byte the canonical MCP URL: clients compare it with the URL they called
and discard the document on any difference (RFC 9728 section 3.3). `scopes_supported` lists the
baseline scopes only: clients that skip the 401 challenge and ask for "everything supported"
still get least privilege, and `notes:write` is obtained by step-up when a 403 asks for it.
`offline_access` is never listed (refresh tokens are the AS's decision, MCP 2026-07-28).
`dpop_signing_alg_values_supported` lists the algorithms a DPoP proof may use here, and
`dpop_bound_access_tokens_required` says whether a Bearer token is refused (DPOP_REQUIRED;
RFC 9728 section 2, RFC 9449).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from shared.cors import open_route
from shared.scopes import CATALOGUE
from shared.settings import Settings

WELL_KNOWN = "/.well-known/oauth-protected-resource"
RESOURCE_NAME = "MCP Reference Server"


def resource_metadata_url(settings: Settings) -> str:
    """The path-inserted metadata URL for the MCP resource (RFC 9728 section 3.1)."""
    parts = urlsplit(settings.mcp_resource_url)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path}"


def protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    return {
        "resource": settings.mcp_resource_url,
        "authorization_servers": [settings.issuer],
        "scopes_supported": list(CATALOGUE.baseline),
        "bearer_methods_supported": ["header"],
        "resource_name": RESOURCE_NAME,
        "dpop_signing_alg_values_supported": list(settings.dpop_algorithms),
        "dpop_bound_access_tokens_required": settings.dpop_required,
    }


def metadata_routes(settings: Settings) -> list[BaseRoute]:
    """Both well-known routes; the document is rendered once, at start-up."""
    body = json.dumps(protected_resource_metadata(settings), separators=(",", ":")).encode()
    headers = {"Cache-Control": "public, max-age=3600"}

    async def metadata(request: Request) -> Response:
        return Response(body, media_type="application/json", headers=headers)

    resource_path = urlsplit(settings.mcp_resource_url).path
    paths = dict.fromkeys([WELL_KNOWN + resource_path, WELL_KNOWN])
    return [open_route(path, metadata, ["GET"]) for path in paths]
