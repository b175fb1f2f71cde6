"""Who is calling the back channel: client authentication at /token, /introspect and /revoke.

Three methods (OAuth 2.1 section 2.4, RFC 7591 `token_endpoint_auth_method`):

* `client_secret_basic`: `Authorization: Basic base64(id:secret)`, where id and secret are each
  form-urlencoded first (RFC 6749 section 2.3.1), so a `:` or `%` in either survives.
* `client_secret_post`: `client_id` and `client_secret` in the form body.
* `private_key_jwt`: `client_assertion_type` (jwt-bearer) and `client_assertion`, a JWT the
  client signed with its private key (RFC 7523 section 2.2; the rules: `assertions.py`);
  `client_id` may be left out (the assertion's `sub` names the client). Only for a client whose
  method it is: configured with `jwks` or `jwks_uri`, or a client ID metadata document that says so.
* `none`: a public client names itself with `client_id` and proves nothing; PKCE and
  refresh-token rotation are what protect it.

A request uses exactly one method (two is `invalid_request`). A confidential client may use
either secret method, whichever it registered: both carry the same secret over the same TLS
channel, and refusing one would only break clients, not stop attackers. Every failure is
`401 invalid_client` with a `WWW-Authenticate: Basic` challenge (RFC 6749 section 5.2, RFC 9110
section 15.5.2: a 401 always names a scheme), and the answer never says whether the client_id
or the secret was wrong.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.datastructures import Headers

from auth_server import crypto
from auth_server.clients.assertions import (
    CLIENT_ASSERTION_TYPE,
    AssertionRejected,
    ClientAssertions,
    assertion_subject,
)
from auth_server.errors import OAuthError
from auth_server.models import AuthMethod, Client, ClientRegistry
from auth_server.params import Form

# Compared against when the client is unknown, so both paths cost one digest and one compare.
_DUMMY_DIGEST = crypto.digest("no client has this secret")


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client: Client
    method: AuthMethod

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def proved_identity(self) -> bool:
        """True when a secret was checked; a public client only claimed its client_id."""
        return self.method != "none"


class ClientAuthenticator:
    def __init__(
        self, registry: ClientRegistry, realm: str, assertions: ClientAssertions | None = None
    ) -> None:
        self._registry = registry
        self._assertions = assertions
        self._challenge = {"WWW-Authenticate": f'Basic realm="{realm}", charset="UTF-8"'}

    def failure(self, description: str = "client authentication failed") -> OAuthError:
        return OAuthError("invalid_client", description, status_code=401, headers=self._challenge)

    async def authenticate(self, headers: Headers, form: Form) -> AuthenticatedClient:
        if "client_assertion" in form or "client_assertion_type" in form:
            return await self._with_assertion(headers, form)
        basic = self._basic_credentials(headers)
        form_id, form_secret = form.get("client_id"), form.get("client_secret")
        if basic is not None:
            if form_secret is not None:
                raise OAuthError("invalid_request", "use one client authentication method, not two")
            client_id, secret = basic
            if form_id is not None and form_id != client_id:
                raise OAuthError("invalid_request", "client_id differs from the Authorization header")
            return await self._with_secret(client_id, secret, "client_secret_basic")
        if form_id is None:
            raise self.failure("client authentication required")
        if form_secret is not None:
            return await self._with_secret(form_id, form_secret, "client_secret_post")
        client = await self._registry.get(form_id)
        if client is None or not client.is_public:
            raise self.failure()
        return AuthenticatedClient(client, "none")

    def _basic_credentials(self, headers: Headers) -> tuple[str, str] | None:
        value = headers.get("authorization")
        if value is None:
            return None
        scheme, _, encoded = value.strip().partition(" ")
        if scheme.lower() != "basic":
            raise self.failure("unsupported authentication scheme; use Basic or client_secret_post")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise self.failure("malformed Basic credentials") from None
        raw_id, colon, raw_secret = decoded.partition(":")
        if not colon:
            raise self.failure("malformed Basic credentials")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if not client_id or not secret:
            raise self.failure("malformed Basic credentials")
        return client_id, secret

    async def _with_assertion(self, headers: Headers, form: Form) -> AuthenticatedClient:
        if headers.get("authorization") is not None or form.get("client_secret") is not None:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise self.failure(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
        assertion = form.require("client_assertion")
        client_id = form.get("client_id") or assertion_subject(assertion)
        if client_id is None:
            raise self.failure("the client assertion names no client (sub)")
        client = await self._registry.get(client_id)
        if (
            client is None
            or client.token_endpoint_auth_method != "private_key_jwt"  # noqa: S105 - a method name
            or self._assertions is None
        ):
            raise self.failure()
        try:
            await self._assertions.verify(assertion, client)
        except AssertionRejected as exc:
            raise self.failure(str(exc)) from None
        return AuthenticatedClient(client, "private_key_jwt")

    async def _with_secret(self, client_id: str, secret: str, method: AuthMethod) -> AuthenticatedClient:
        client = await self._registry.get(client_id)
        expected = client.client_secret_digest if client is not None else None
        matches = crypto.constant_time_equals(crypto.digest(secret), expected or _DUMMY_DIGEST)
        if client is None or expected is None or not client.uses_secret or not matches:
            raise self.failure()
        return AuthenticatedClient(client, method)
