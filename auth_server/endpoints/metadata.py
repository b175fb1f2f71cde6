"""Authorization server metadata: RFC 8414 and OpenID Connect Discovery, one document.

MCP clients look for `/.well-known/oauth-authorization-server` first, then OpenID discovery,
and refuse to continue unless `issuer` equals, byte for byte, the issuer they derived the URL
from. So the document is built once from `settings.issuer` and served at every location a
client may derive:

* root issuer `https://h`: `/.well-known/oauth-authorization-server` and
  `/.well-known/openid-configuration`;
* path issuer `https://h/t1`: `/.well-known/oauth-authorization-server/t1` (RFC 8414 path
  insertion), `/.well-known/openid-configuration/t1` and `/t1/.well-known/openid-configuration`.

It is public, so any origin may read it (CORS, `shared/cors.py`), and a `MCP-Protocol-Version` header is
accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from auth_server.clients.assertions import ALGORITHMS as ASSERTION_ALGORITHMS
from auth_server.enterprise_idps import ID_JAG_PROFILE
from auth_server.grants import served_grant_types
from auth_server.urls import endpoint_url, path_appended_well_known, path_inserted_well_known
from shared.cors import open_route
from shared.scopes import CATALOGUE
from shared.settings import Settings

CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
SECRET_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def authorization_server_metadata(settings: Settings) -> dict[str, Any]:
    """The document. Every URL in it starts with the issuer; nothing unsupported is advertised."""
    document: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": endpoint_url(settings, "authorize"),
        "token_endpoint": endpoint_url(settings, "token"),
        "registration_endpoint": endpoint_url(settings, "register"),
        "jwks_uri": endpoint_url(settings, "jwks"),
        "introspection_endpoint": endpoint_url(settings, "introspect"),
        "revocation_endpoint": endpoint_url(settings, "revoke"),
        "scopes_supported": list(CATALOGUE.names),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(served_grant_types(settings)),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": SECRET_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "client_id_metadata_document_supported": True,
        "dpop_signing_alg_values_supported": list(settings.dpop_algorithms),
        "authorization_response_iss_parameter_supported": True,
    }
    if settings.enterprise_idp_issuers:  # SEP-990 section 6 (the ID-JAG draft's section 7.2)
        document["authorization_grant_profiles_supported"] = [ID_JAG_PROFILE]
    return document


def metadata_routes(settings: Settings) -> list[BaseRoute]:
    document = authorization_server_metadata(settings)
    headers = {"Cache-Control": "public, max-age=3600"}

    async def metadata(_: Request) -> Response:
        return JSONResponse(document, headers=headers)

    paths = dict.fromkeys(
        (
            path_inserted_well_known(settings, "oauth-authorization-server"),
            path_inserted_well_known(settings, "openid-configuration"),
            path_appended_well_known(settings, "openid-configuration"),
        )
    )
    return [open_route(path, metadata, ["GET"]) for path in paths]
