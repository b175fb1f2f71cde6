"""Client authentication with a signed JWT: `private_key_jwt` (RFC 7523 sections 2.2 and 3).

A client that holds a private key instead of a shared secret sends
`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
`client_assertion=<JWT>`, `client_id` being optional (the assertion's `sub` names the client).
The checks, in this order, each failure a 401 `invalid_client` saying which rule failed (no
secret is involved, so naming the rule tells an attacker nothing a valid signature would not):

1. a compact JWS of at most MAX_ASSERTION_BYTES whose `alg` is one of ALGORITHMS (asymmetric:
   never `none`, never HMAC); `typ`, when present, is `JWT` or `client-authentication+jwt`
   (draft-ietf-oauth-rfc7523bis), so a token of another kind (an access token, an ID-JAG, a
   DPoP proof) is never taken for a client's assertion;
2. `iss` and `sub` are both the client_id (and equal the form's `client_id` when it is sent);
3. `aud` is this authorization server's issuer, or its token endpoint URL (older clients),
   as the single audience: a list naming several servers is an assertion any of them could
   replay here;
4. `exp` is in the future, at most MAX_LIFETIME seconds away; `iat` and `nbf`, when present, are
   not in the future (LEEWAY seconds of clock skew either way);
5. the signature verifies with one of the client's keys (`keys.py`: the one its `kid`
   names, else each in turn);
6. `jti` (required) was never seen before: `single_use` writes one Store key per jti (SET NX,
   for as long as the assertion could be valid), so an assertion is good for one request on
   every instance sharing the Store, a Redis Cluster included.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from auth_server.clients.keys import ClientKeys
from auth_server.models import Client
from auth_server.urls import endpoint_url
from shared import untrusted_json
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from shared.validators.claims import audience_of, numeric_date

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Signing algorithms accepted on client assertions, advertised as
# token_endpoint_auth_signing_alg_values_supported.
ALGORITHMS: tuple[str, ...] = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512"),
)
ASSERTION_TYPES = frozenset({"jwt", "application/jwt", "client-authentication+jwt"})
MAX_ASSERTION_BYTES = 8192
MAX_LIFETIME = 600
LEEWAY = 30
MAX_JTI_LENGTH = 256


class AssertionRejected(Exception):
    """The assertion does not authenticate the client; the message says which rule failed."""


def jws_parts(token: str, *, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, unverified, or AssertionRejected; for picking the
    key (and, for an assertion without `client_id`, the client) before the signature is checked."""
    if len(token) > max_bytes or token.count(".") != 2:
        raise AssertionRejected("not a compact JWT")
    parts = []
    for encoded in token.split(".")[:2]:
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            parts.append(untrusted_json.parse(raw, max_bytes=max_bytes))
        except (binascii.Error, ValueError):  # UntrustedJsonError is a ValueError
            raise AssertionRejected("not a compact JWT") from None
    header, claims = parts
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected("not a compact JWT")
    return header, claims


def assertion_subject(assertion: str) -> str | None:
    """The `sub` an assertion claims (unverified): the client it says it authenticates."""
    try:
        _, claims = jws_parts(assertion, max_bytes=MAX_ASSERTION_BYTES)
    except AssertionRejected:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else None


async def single_use(store: Store, namespace: str, jti: str, *, expires_at: float, now: float) -> bool:
    """Record `jti` of `namespace` (the party that minted it: a client, an identity provider) as
    used until `expires_at` (plus LEEWAY); False if it was used before. One key per jti."""
    key = records.assertion_jti_key(namespace, jti)
    ttl = max(1, int(expires_at - now) + LEEWAY)
    return await store.set(key, "1", ttl=ttl, only_if_absent=True)


class ClientAssertions:
    """Verifies `private_key_jwt` assertions (module docstring) for the clients that use it."""

    def __init__(
        self,
        *,
        issuer: str,
        token_endpoint: str,
        store: Store,
        keys: ClientKeys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._audiences = frozenset({issuer, token_endpoint})
        self._store = store
        self._keys = keys
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, keys: ClientKeys | None = None
    ) -> ClientAssertions:
        return cls(
            issuer=settings.issuer,
            token_endpoint=endpoint_url(settings, "token"),
            store=store,
            keys=keys or ClientKeys.from_settings(settings),
        )

    async def verify(self, assertion: str, client: Client) -> None:
        """Return if `assertion` authenticates `client`, else AssertionRejected."""
        header, claims = jws_parts(assertion, max_bytes=MAX_ASSERTION_BYTES)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise AssertionRejected(f"the assertion's alg must be one of {', '.join(ALGORITHMS)}")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ASSERTION_TYPES):
            raise AssertionRejected("the assertion's typ is not a client assertion's (JWT)")
        now = self._clock()
        jti, expires_at = self._check_claims(claims, client.client_id, now)
        kid = header.get("kid")
        candidates = await self._keys.candidates(
            jwks=client.jwks, jwks_uri=client.jwks_uri, kid=kid if isinstance(kid, str) else None
        )
        if not candidates:
            raise AssertionRejected("no key of the client matches the assertion (kid)")
        if not any(_verifies(assertion, candidate.key, alg) for candidate in candidates):
            raise AssertionRejected("the assertion's signature does not verify with the client's keys")
        if not await single_use(self._store, client.client_id, jti, expires_at=expires_at, now=now):
            raise AssertionRejected("the assertion was used before (jti)")

    def _check_claims(self, claims: Mapping[str, Any], client_id: str, now: float) -> tuple[str, float]:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise AssertionRejected("the assertion's iss and sub must both be the client_id")
        audience = audience_of(claims.get("aud"))
        if len(audience) != 1 or audience[0] not in self._audiences:
            raise AssertionRejected("the assertion's aud must be this authorization server's issuer")
        exp = numeric_date(claims.get("exp"))
        if exp is None or exp + LEEWAY <= now:
            raise AssertionRejected("the assertion has expired (exp)")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise AssertionRejected(f"the assertion is valid for too long (exp beyond {MAX_LIFETIME} s)")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            moment = numeric_date(value)
            if moment is None or moment > now + LEEWAY:
                raise AssertionRejected(f"the assertion's {name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise AssertionRejected("the assertion needs a jti (single use)")
        return jti, exp


def _verifies(assertion: str, key: Any, alg: str) -> bool:
    try:
        jwt.decode(assertion, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError):
        return False
    return True
