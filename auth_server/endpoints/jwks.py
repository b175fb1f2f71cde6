"""The public signing keys (RFC 7517 JWKS) that verify JWT access tokens, at `jwks_uri`.

Public parameters only. Open to any origin (resource servers and browser-based tools fetch it;
`shared/cors.py`),
cacheable for a few minutes: after a rotation the old key stays published for a whole access
token lifetime, so a verifier with a slightly stale copy still finds every kid it needs, and one
that meets an unknown kid refetches.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_server.endpoints.forms import Endpoint, oauth_endpoint
from auth_server.services import BackChannel

CACHE = {"Cache-Control": "public, max-age=300"}


def jwks_endpoint(channel: BackChannel) -> Endpoint:
    @oauth_endpoint
    async def jwks(request: Request) -> Response:
        return JSONResponse(
            await channel.keys.public_jwks(),
            headers=CACHE,
            media_type="application/jwk-set+json",
        )

    return jwks
