"""RFC 9068 JWT access tokens, verified locally against the authorization server's JWKS.

Used in external mode when the AS issues JWTs (TOKEN_FORMAT=jwt): no network hop per request,
at the price that a revoked JWT stays valid until its `exp` (so the AS keeps them short-lived).

The checks, in the order RFC 9068 section 4 and RFC 8725 ask for them:
- the header is parsed before anything else and the `alg` must be on an allow-list of asymmetric
  algorithms (never `none`, never HMAC: a resource server holds no shared secret, and accepting
  HS256 would let anyone sign with the *public* key);
- `typ` must be `at+jwt` (ID tokens and other JWTs are not access tokens), or one of the types
  configured in JWT_TOKEN_TYPES for providers that send something else (Entra ID sends `JWT`);
- the key is chosen by `kid` from the JWKS, which is fetched from the `jwks_uri` of the issuer's
  metadata (RFC 8414, else OpenID discovery: `discovery.py`), cached, and refetched when an
  unknown `kid` appears (key rotation) at most once per `refresh_interval` seconds, so garbage
  `kid`s cannot make us hammer the AS;
- after the signature: `iss` is the trusted issuer (or one of ACCEPTED_ISSUERS: another name the
  same provider signs with the same keys, as Scalekit's environment URL), `aud` contains this MCP
  server's URL or one of ACCEPTED_AUDIENCES (`claims.names_accepted_audience`), `exp` is in the
  future and `nbf` (if any) in the past, both with a small leeway for clock skew;
- a `cnf.jkt` (RFC 9449 section 6.1) makes the token DPoP-bound (`Principal.cnf_jkt`): the
  middleware then wants a proof by that key; any other `cnf` is refused (`claims.confirmation_jkt`).

Which claims name the user and the scopes is configurable (TOKEN_SUBJECT_CLAIM, default `sub`;
TOKEN_SCOPE_CLAIM, default `scope`, a space-separated string or a list such as Entra's `scp`).

Anything that is not a compact JWS at all is "not mine" (`malformed`), so a chain can pass opaque
tokens on to introspection; a JWT that fails any check is rejected here and goes no further.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from shared import tracing, untrusted_json
from shared.bounded_cache import BoundedCache
from shared.settings import DEFAULT_JWT_ALGORITHMS, Settings
from shared.validation import Principal, TokenRejected, ValidatorUnavailable
from shared.validators.claims import (
    audience_of,
    confirmation_jkt,
    names_accepted_audience,
    numeric_date,
    scope_values,
)
from shared.validators.discovery import ProviderMetadata

logger = logging.getLogger(__name__)

_ASYMMETRIC_KTY = frozenset({"RSA", "EC", "OKP"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_TOKEN_LENGTH = 16_384
_MAX_JWKS_BYTES = 256 * 1024
_VERIFIED_MAX = 4096  # signatures remembered, by token digest (oldest dropped first)


class JwtValidator:
    """A TokenValidator for RFC 9068 JWT access tokens."""

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        extra_audiences: Collection[str] = (),
        extra_issuers: Collection[str] = (),
        jwks_uri: str | None = None,
        metadata_url: str | None = None,
        back_channel_base: str | None = None,
        metadata: ProviderMetadata | None = None,
        algorithms: Collection[str] = DEFAULT_JWT_ALGORITHMS,
        token_types: Collection[str] = ("at+jwt",),
        scope_claim: str = "scope",
        subject_claim: str = "sub",
        leeway: int = 30,
        refresh_interval: float = 30.0,
        cache_ttl: float = 300.0,
        timeout: float = 3.0,
        client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if metadata is None and metadata_url is not None:
            metadata = ProviderMetadata(
                issuer=issuer, back_channel_base=back_channel_base, urls=[metadata_url], clock=clock
            )
        if jwks_uri is None and metadata is None:
            raise ValueError("JwtValidator needs jwks_uri, metadata_url or metadata")
        unsafe = [alg for alg in algorithms if alg.lower() == "none" or alg.upper().startswith("HS")]
        if unsafe:
            raise ValueError(f"algorithms must be asymmetric; refusing {unsafe}")
        self._issuer = issuer
        self._issuers = frozenset({issuer, *extra_issuers})
        self._audiences = frozenset({resource, *extra_audiences})
        self._jwks_uri = jwks_uri
        self._metadata = metadata
        self._algorithms = frozenset(algorithms)
        self._token_types = _media_types(token_types)
        self._scope_claim = scope_claim
        self._subject_claim = subject_claim
        self._leeway = leeway
        self._refresh_interval = refresh_interval
        self._cache_ttl = cache_ttl
        self._timeout = timeout
        self._http = tracing.PeerClient(client, timeout=timeout)
        self._clock = clock
        self._keys: dict[str, Key] = {}
        self._keys_fetched_at: float | None = None
        self._last_fetch_attempt = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0  # JWKS downloads (observability and tests)
        # sha256(token) -> (the key that verified it, its claims). A signature over the same bytes
        # with the same key object never changes, so it is checked once; a refetched or withdrawn
        # key is a different object (or none), so its tokens are verified again. Everything else
        # (header, alg, typ, key lookup, iss, aud, exp, nbf) is still checked on every call.
        self._verified: BoundedCache[bytes, tuple[Key, Mapping[str, Any]]] = BoundedCache(
            _VERIFIED_MAX, lru=False
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: httpx2.AsyncClient | None = None,
        metadata: ProviderMetadata | None = None,
    ) -> JwtValidator:
        return cls(
            issuer=settings.issuer,
            resource=settings.mcp_resource_url,
            extra_audiences=settings.accepted_audiences,
            extra_issuers=settings.accepted_issuers,
            metadata=metadata or ProviderMetadata.from_settings(settings),
            algorithms=settings.jwt_algorithms,
            token_types=settings.jwt_token_types,
            scope_claim=settings.token_scope_claim,
            subject_claim=settings.token_subject_claim,
            leeway=settings.jwt_leeway,
            timeout=settings.introspection_timeout,
            client=client,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- validation -------------------------------------------------------------------------------
    async def validate(self, token: str) -> Principal:
        header = _compact_jws_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenRejected("bad_signature", "signing algorithm not allowed")
        typ = header.get("typ", "")
        if not isinstance(typ, str) or typ.lower() not in self._token_types:
            raise TokenRejected("not_an_access_token", "not an access token (typ)")
        kid = header.get("kid")
        key = await self._key_for(kid if isinstance(kid, str) else None)
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None and known[0] is key:
            return self._principal(known[1])
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError):
            raise TokenRejected("bad_signature") from None
        self._verified.put(digest, (key, decoded.claims))
        return self._principal(decoded.claims)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        now = self._clock()
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in self._issuers:
            raise TokenRejected("wrong_issuer")
        audience = audience_of(claims.get("aud"))
        if not names_accepted_audience(audience, self._audiences):
            raise TokenRejected("wrong_audience")
        exp = numeric_date(claims.get("exp"))
        if exp is None:
            raise TokenRejected("not_an_access_token", "token has no expiry")
        if exp + self._leeway <= now:
            raise TokenRejected("expired")
        nbf = numeric_date(claims.get("nbf"))
        if nbf is not None and nbf - self._leeway > now:
            raise TokenRejected("expired", "token is not valid yet")
        subject = claims.get(self._subject_claim)
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("not_an_access_token", "token has no subject")
        client_id = claims.get("client_id", claims.get("azp", ""))
        scope = claims.get(self._scope_claim)
        if scope is None and self._scope_claim == "scope":
            scope = claims.get("scp")
        scopes = scope_values(scope)
        return Principal(
            subject=subject,
            client_id=client_id if isinstance(client_id, str) else "",
            scopes=frozenset(scopes),
            audience=audience,
            issuer=issuer,
            expires_at=int(exp),
            claims=dict(claims),
            cnf_jkt=confirmation_jkt(claims.get("cnf")),
        )

    # --- keys ---------------------------------------------------------------------------------------
    async def _key_for(self, kid: str | None) -> Key:
        stale = self._keys_fetched_at is None or self._clock() - self._keys_fetched_at > self._cache_ttl
        key = None if stale else self._find(kid)
        if key is None:
            await self._refresh(force=not stale)
            key = self._find(kid)
        if key is None:
            raise TokenRejected("bad_signature", "unknown signing key")
        return key

    def _find(self, kid: str | None) -> Key | None:
        if kid is not None:
            return self._keys.get(kid)
        # RFC 9068 does not require `kid`; without one only an unambiguous key set will do.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self, *, force: bool) -> None:
        """Fetch the JWKS unless another task just did, or a forced refetch is rate-limited."""
        async with self._lock:
            now = self._clock()
            if now - self._last_fetch_attempt < self._refresh_interval:
                if self._keys_fetched_at is None:
                    raise ValidatorUnavailable("signing keys unavailable", retry_after=self._retry_after(now))
                return
            fresh = self._keys_fetched_at is not None and now - self._keys_fetched_at <= self._cache_ttl
            if fresh and not force:
                return
            self._last_fetch_attempt = now
            try:
                self._keys = await self._fetch_keys()
            except ValidatorUnavailable:
                if self._keys_fetched_at is None:
                    raise
                logger.warning("JWKS refresh failed; keeping the %d cached keys", len(self._keys))
                return
            self._keys_fetched_at = now

    def _retry_after(self, now: float) -> int:
        return max(1, int(self._refresh_interval - (now - self._last_fetch_attempt)) + 1)

    async def _fetch_keys(self) -> dict[str, Key]:
        client = self._http.get()
        self.fetches += 1
        try:
            async with asyncio.timeout(self._timeout):
                jwks_uri = self._jwks_uri or await self._discover_jwks_uri(client)
                response = await client.get(jwks_uri, headers={"Accept": "application/json"})
        except (TimeoutError, httpx2.HTTPError) as exc:
            logger.warning("JWKS endpoint unreachable: %s", type(exc).__name__)
            raise ValidatorUnavailable("signing keys unavailable") from None
        if response.status_code != 200 or len(response.content) > _MAX_JWKS_BYTES:
            logger.warning("JWKS endpoint answered HTTP %d", response.status_code)
            raise ValidatorUnavailable("signing keys unavailable")
        try:
            document = untrusted_json.parse(response.content, max_bytes=_MAX_JWKS_BYTES)
        except untrusted_json.UntrustedJsonError:
            document = None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValidatorUnavailable("signing keys unavailable")
        keys: dict[str, Key] = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("kty") not in _ASYMMETRIC_KTY:
                continue  # symmetric keys are never trusted for access tokens
            if entry.get("use", "sig") != "sig":
                continue
            public = {name: value for name, value in entry.items() if name not in _PRIVATE_MEMBERS}
            try:
                key = import_key(public)
            except (JoseError, ValueError, TypeError):
                logger.warning("skipping unusable JWKS entry %d", index)
                continue
            kid = entry.get("kid")
            keys[kid if isinstance(kid, str) else f"#{index}"] = key
        return keys

    async def _discover_jwks_uri(self, client: httpx2.AsyncClient) -> str:
        assert self._metadata is not None
        jwks_uri = await self._metadata.endpoint(client, "jwks_uri")
        if jwks_uri is None:
            logger.warning("the metadata of %s names no jwks_uri", self._issuer)
            raise ValidatorUnavailable("signing keys unavailable")
        return jwks_uri


def _compact_jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, or `malformed` for anything else (not ours)."""
    if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise TokenRejected("malformed", "not a JWT")
    encoded = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        header = untrusted_json.parse(raw, max_bytes=_MAX_TOKEN_LENGTH)
    except (binascii.Error, ValueError):  # UntrustedJsonError is a ValueError
        raise TokenRejected("malformed", "not a JWT") from None
    if not isinstance(header, dict) or "alg" not in header:
        raise TokenRejected("malformed", "not a JWT")
    return header


def _media_types(types: Collection[str]) -> frozenset[str]:
    """Accepted `typ` values, lower-cased, each also with the `application/` prefix (RFC 7515 4.1.9)."""
    accepted: set[str] = set()
    for value in types:
        bare = value.strip().lower().removeprefix("application/")
        accepted.update({bare, f"application/{bare}"} if bare else {""})
    return frozenset(accepted)
