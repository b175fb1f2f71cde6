"""Real servers for the resource-server tests: the MCP app and a small authorization server.

`LocalServer` (tests/fixtures/launch.py) runs any ASGI app on a real uvicorn bound to
127.0.0.1 on a port the OS picks, in the test's own event loop. `MiniAuthorizationServer` is the
smallest honest stand-in for the back channel of an authorization server: RFC 8414 metadata, a
JWKS, and an RFC 7662 endpoint that authenticates its caller with client_secret_basic. Its tokens
are real credentials checked by the real validators (JWTs signed with its RSA key, opaque tokens
it introspects); tests can revoke tokens, rotate keys, and make it fail (HTTP 500, slow, garbage)
or go away entirely.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fixtures.launch import LocalServer

RS_CLIENT_ID = "mcp-resource-server"
RS_CLIENT_SECRET = "rs-secret-for-tests-0123456789-abcdefgh"  # >= 32: a public test passes the check

__all__ = ["RS_CLIENT_ID", "RS_CLIENT_SECRET", "LocalServer", "MiniAuthorizationServer", "sse_or_json"]

Mode = Literal["ok", "error", "slow", "garbage"]


@functools.cache
def _default_key() -> RSAKey:
    """One signing key for every test's AS: generating RSA keys is the slow part of a setup."""
    return MiniAuthorizationServer.new_key("key-1")


class MiniAuthorizationServer:
    """Metadata, JWKS and introspection, with knobs for the failure modes a resource server meets."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self.key = _default_key()
        self.published: list[RSAKey] = [self.key]
        self.opaque: dict[str, dict[str, Any]] = {}
        self.mode: Mode = "ok"
        self.slow_seconds = 10.0
        self.introspection_calls = 0
        self.jwks_calls = 0
        self.last_introspection_auth: str | None = None

    @staticmethod
    def new_key(kid: str) -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})

    # --- tokens ----------------------------------------------------------------------------
    def claims(self, subject: str, scopes: list[str] | tuple[str, ...], **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.resource,
            "client_id": f"client-of-{subject}",
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(8),
        }
        values.update(overrides)
        return {name: value for name, value in values.items() if value is not None}

    def mint_jwt(
        self,
        subject: str,
        scopes: list[str] | tuple[str, ...],
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        key = key or self.key
        protected = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
        return jwt.encode(protected, self.claims(subject, scopes, **claims), key)

    def unsigned_jwt(
        self, subject: str, scopes: list[str], header: dict[str, Any], sign: bytes | None
    ) -> str:
        """A JWT assembled by hand (alg none, HMAC with the public key...), as an attacker would."""

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = (
            b64(json.dumps(header).encode()) + "." + b64(json.dumps(self.claims(subject, scopes)).encode())
        )
        signature = (
            "" if sign is None else b64(hmac.new(sign, signing_input.encode(), hashlib.sha256).digest())
        )
        return signing_input + "." + signature

    def mint_opaque(self, subject: str, scopes: list[str] | tuple[str, ...], **overrides: Any) -> str:
        token = secrets.token_urlsafe(32)
        self.opaque[token] = {
            "active": True,
            "token_type": "Bearer",
            **self.claims(subject, scopes, **overrides),
        }
        return token

    def revoke(self, token: str) -> None:
        self.opaque.pop(token, None)

    # --- the HTTP side -----------------------------------------------------------------------
    def app(self) -> Starlette:
        async def metadata(_: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "jwks_uri": self.issuer + "/jwks",
                    "introspection_endpoint": self.issuer + "/introspect",
                    "token_endpoint": self.issuer + "/token",
                    "authorization_endpoint": self.issuer + "/authorize",
                    "response_types_supported": ["code"],
                }
            )

        async def jwks(_: Request) -> Response:
            self.jwks_calls += 1
            return JSONResponse({"keys": [key.as_dict(private=False) for key in self.published]})

        async def introspect(request: Request) -> Response:
            self.introspection_calls += 1
            self.last_introspection_auth = request.headers.get("authorization")
            if self.mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            if self.mode == "error":
                return JSONResponse({"error": "server_error"}, status_code=500)
            if self.mode == "garbage":
                return Response("<html>maintenance</html>", media_type="text/html")
            expected = "Basic " + base64.b64encode(f"{RS_CLIENT_ID}:{RS_CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return JSONResponse(
                    {"error": "invalid_client"}, status_code=401, headers={"WWW-Authenticate": "Basic"}
                )
            form = await request.form()
            record = self.opaque.get(str(form.get("token", "")))
            if record is None or record.get("exp", 0) <= time.time():
                return JSONResponse({"active": False})
            return JSONResponse(record)

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/jwks", jwks),
                Route("/introspect", introspect, methods=["POST"]),
            ]
        )


def sse_or_json(content_type: str, text: str) -> Any:
    """The JSON-RPC message in a response, whether it came as JSON or as an SSE stream."""
    if content_type.startswith("application/json"):
        return json.loads(text)
    found = None
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            message = json.loads(line[5:])
            if "id" in message:
                found = message
    return found


Clock = Callable[[], float]
