"""Dynamic client registration, POST /register (RFC 7591).

Open registration (no initial access token), as MCP clients expect, but rate-limited per client
IP (429 + Retry-After), and a registration no user has authorized yet is kept only for a while, a
bounded number at once (`StoreClientRegistry.add`). The metadata rules are
`clients.metadata.parse_client_metadata`; this module adds what is specific to registration:

* client_ids are random and never look like a URL, so they cannot collide with client ID
  metadata document URLs (CIMD, "Supporting Both Pre-Registered and Unregistered Clients");
* `token_endpoint_auth_method` defaults to `client_secret_basic` (RFC 7591 section 2). Public
  clients (`none`) get no secret; confidential ones get a secret exactly once, in this response,
  with `client_secret_expires_at: 0` (never expires). Only its digest is stored;
* the response repeats the effective metadata (after defaults) and is never cached.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_server import crypto
from auth_server.audit import AuditLog
from auth_server.clients.metadata import ClientMetadataRejected, parse_client_metadata
from auth_server.clients.registry import StoreClientRegistry
from auth_server.endpoints.forms import BodyTooLarge, Endpoint, oauth_endpoint, read_body
from auth_server.errors import NO_STORE
from auth_server.models import Client
from auth_server.rate_limit import RateLimiter, client_ip
from shared import untrusted_json

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
CLIENT_ID_PREFIX = "mcp-client-"


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(18)


async def read_json_object(request: Request) -> dict[str, Any]:
    try:
        body = await read_body(request, MAX_BODY_BYTES)
    except BodyTooLarge:
        raise ClientMetadataRejected("invalid_client_metadata", "the request body is too large") from None
    try:
        document = untrusted_json.parse(body, max_bytes=MAX_BODY_BYTES)
    except untrusted_json.UntrustedJsonError as exc:
        raise ClientMetadataRejected("invalid_client_metadata", f"the request body: {exc}") from None
    if not isinstance(document, dict):
        raise ClientMetadataRejected("invalid_client_metadata", "the request body must be a JSON object")
    return document


def registration_response(client: Client, secret: str | None) -> dict[str, Any]:
    """RFC 7591 section 3.2.1: client_id, issued-at, and every registered metadata value."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.client_id_issued_at,
        "client_name": client.client_name,
        "client_uri": client.client_uri,
        "logo_uri": client.logo_uri,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "application_type": client.application_type,
        "scope": client.scope,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens or None,
    }
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    return {name: value for name, value in body.items() if value is not None}


def registration_endpoint(registry: StoreClientRegistry, limiter: RateLimiter, audit: AuditLog) -> Endpoint:
    @oauth_endpoint
    async def register(request: Request) -> Response:
        await limiter.check("register", request)
        try:
            metadata = parse_client_metadata(
                await read_json_object(request),
                default_auth_method="client_secret_basic",
                native_schemes=registry.native_schemes,
            )
        except ClientMetadataRejected as exc:  # the operator sees why (a scheme to allow, say)
            logger.info("registration from %s refused: %s", client_ip(request), exc)
            raise
        secret = None if metadata.is_public else crypto.new_credential()
        client = metadata.to_client(
            new_client_id(),
            "dynamic",
            client_id_issued_at=int(time.time()),
            client_secret_digest=crypto.digest(secret) if secret else None,
        )
        while not await registry.add(client):  # 144 random bits: in practice never loops
            client = client.model_copy(update={"client_id": new_client_id()})
        audit.record(
            "client_registered", ip=client_ip(request), client_id=client.client_id, scope=client.scope
        )
        return JSONResponse(registration_response(client, secret), status_code=201, headers=NO_STORE)

    return register
