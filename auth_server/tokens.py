"""Minting access and refresh tokens, and finding them again.

Access tokens come in the format TOKEN_FORMAT names:

* opaque: 256 random bits; the Store keeps the record under `auth:access:{sha256}` for exactly the
  token's lifetime, so revoking is deleting and expiry is the TTL.
* jwt: an RFC 9068 `at+jwt` signed by `SigningKeys`. The same record is also kept under
  `auth:jti:{jti}`: introspection, revocation and the in-process validator find JWTs through it,
  so a revoked JWT is dead at once for everything that asks this AS (a resource server that only
  checks signatures still accepts it until `exp`; that is the trade-off of the format).

Refresh tokens are always opaque (`auth:refresh:{sha256}`): only this AS ever reads them.

A DPoP-bound token (RFC 9449, `auth_server/dpop.py`) carries the key's thumbprint in its record
(`cnf_jkt`), in its JWT as `cnf: {jkt}` and in introspection answers; the response says
`token_type: DPoP`. A refresh token's `cnf_jkt` (public clients) ties refreshing to that key.
Lookups accept both access-token formats whatever the current setting, so switching the setting
does not invalidate tokens already issued.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from auth_server import crypto
from auth_server.signing_keys import SigningKeys
from shared.bounded_cache import BoundedCache
from shared.settings import Settings, TokenFormat
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import access_key, jti_key, refresh_key
from shared.validation import TokenRejected

JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 section 4: typ, case-insensitive
# Parsed access-token records, by their stored JSON (bounded, oldest dropped first).
PARSED_RECORDS_MAX = 4096


def looks_like_jwt(token: str) -> bool:
    """Opaque tokens are base64url and never contain a dot; a JWS compact token has two."""
    return token.count(".") == 2


class AccessTokenRecord(BaseModel):
    """What an access token means; the claims of RFC 9068 plus the grant it belongs to."""

    model_config = ConfigDict(frozen=True)

    sub: str
    client_id: str
    scope: str
    aud: tuple[str, ...]
    iss: str
    exp: int
    iat: int
    jti: str
    grant_id: str | None = None  # None for client_credentials: no refresh, nothing to chain
    format: Literal["opaque", "jwt"] = "opaque"
    act: dict[str, str] | None = None  # RFC 8693 section 4.1: who acts for `sub` (exchanged tokens)
    cnf_jkt: str | None = None  # DPoP-bound to this key (RFC 9449 section 6); None: a bearer token


class RefreshTokenRecord(BaseModel):
    """A refresh token: the whole grant's scope and resource, so access tokens can be re-minted."""

    model_config = ConfigDict(frozen=True)

    sub: str
    client_id: str
    scope: str  # the consented scope; a narrower access token never narrows the next refresh
    resource: str
    iss: str
    exp: int
    iat: int
    grant_id: str
    cnf_jkt: str | None = None  # a public client's DPoP key: refreshing needs a proof by it


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: str
    jti: str
    refresh_token: str | None
    store_keys: tuple[str, ...]  # what was written; a grant remembers them to revoke them
    issued_token_type: str | None = None  # RFC 8693 section 2.2.1 (token exchange only)
    cnf_jkt: str | None = None  # the access token is DPoP-bound to this key

    def response_body(self) -> dict[str, Any]:
        """RFC 6749 section 5.1 / OAuth 2.1 section 3.2.3 (RFC 8693 section 2.2.1 for exchanges,
        RFC 9449 section 5 for `DPoP`)."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer" if self.cnf_jkt is None else "DPoP",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.issued_token_type is not None:
            body["issued_token_type"] = self.issued_token_type
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass(frozen=True, slots=True)
class Derivation:
    """Tokens a retry can get again, identical (refresh rotation's grace period, grants/refresh_token.py).

    Every credential is `crypto.derived_credential(secret, salt, ...)`: `secret` is the token the
    client presented (never stored), `salt` random and stored; the claims are fixed by `issued_at`
    and `jti`. Issuing twice writes the same records under the same keys; a JWT is signed again
    (ES256 signatures differ) over the same claims and jti, so both copies are the same token to
    every check."""

    secret: str
    salt: str
    issued_at: int
    jti: str


@dataclass(frozen=True, slots=True)
class FoundToken:
    """A live token and the Store key that keeps it alive (delete it to revoke)."""

    kind: Literal["access_token", "refresh_token"]
    record: AccessTokenRecord | RefreshTokenRecord
    store_key: str


class TokenService:
    """Mints tokens into the Store and resolves presented tokens back to their records."""

    def __init__(
        self,
        store: Store,
        keys: SigningKeys,
        *,
        issuer: str,
        token_format: TokenFormat,
        access_ttl: int,
        refresh_ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock
        self._issuer = issuer
        self._format = token_format
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        # The Store is read on every lookup (revoking is deleting, so that stays immediate); only
        # parsing the same stored JSON again is skipped. Records are frozen, so sharing is safe.
        self._parsed: BoundedCache[str, AccessTokenRecord] = BoundedCache(PARSED_RECORDS_MAX, lru=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, keys: SigningKeys, *, clock: Callable[[], float] = time.time
    ) -> TokenService:
        return cls(
            store,
            keys,
            issuer=settings.issuer,
            token_format=settings.token_format,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
            clock=clock,
        )

    @property
    def refresh_ttl(self) -> int:
        return self._refresh_ttl

    # -- minting --------------------------------------------------------------------------

    async def issue(
        self,
        *,
        client_id: str,
        subject: str,
        scopes: Sequence[str],
        resource: str,
        grant_id: str | None,
        refresh_scopes: Sequence[str] | None = None,
        derivation: Derivation | None = None,
        cnf_jkt: str | None = None,
        refresh_cnf_jkt: str | None = None,
    ) -> IssuedTokens:
        """An access token for `scopes` at `resource`, plus a refresh token carrying
        `refresh_scopes` (the grant's full scope) when given. Everything is stored with its TTL
        before the tokens are returned. With `derivation`, the tokens are the ones it determines
        (the same on every call) and live what is left of their lifetime since its `issued_at`.
        `cnf_jkt` binds the access token to a DPoP key, `refresh_cnf_jkt` the refresh token."""
        now = int(self._clock())
        issued_at = now if derivation is None else derivation.issued_at
        scope = " ".join(scopes)
        record = AccessTokenRecord(
            sub=subject,
            client_id=client_id,
            scope=scope,
            aud=(resource,),
            iss=self._issuer,
            exp=issued_at + self._access_ttl,
            iat=issued_at,
            jti=secrets.token_urlsafe(16) if derivation is None else derivation.jti,
            grant_id=grant_id,
            format=self._format,
            cnf_jkt=cnf_jkt,
        )
        if self._format == "jwt":
            access_token = await self._keys.sign(_jwt_claims(record))
            key = jti_key(record.jti)
        else:
            access_token = _credential(derivation, "access")
            key = access_key(access_token)
        access_left = max(1, record.exp - now)
        await records.write(self._store, key, record, ttl=access_left)
        keys = [key]

        refresh_token = None
        if refresh_scopes is not None:
            assert grant_id is not None, "a refresh token always belongs to a grant"
            refresh_token = _credential(derivation, "refresh")
            refresh_record = RefreshTokenRecord(
                sub=subject,
                client_id=client_id,
                scope=" ".join(refresh_scopes),
                resource=resource,
                iss=self._issuer,
                exp=issued_at + self._refresh_ttl,
                iat=issued_at,
                grant_id=grant_id,
                cnf_jkt=refresh_cnf_jkt,
            )
            rkey = refresh_key(refresh_token)
            await records.write(self._store, rkey, refresh_record, ttl=max(1, refresh_record.exp - now))
            keys.append(rkey)
        return IssuedTokens(
            access_token, access_left, scope, record.jti, refresh_token, tuple(keys), cnf_jkt=cnf_jkt
        )

    async def issue_delegated(
        self,
        *,
        subject: str,
        client_id: str,
        scopes: Sequence[str],
        audience: str,
        act: dict[str, str],
        ttl: int,
        grant_id: str | None,
    ) -> IssuedTokens:
        """An RFC 8693 exchanged token for `audience`: always a JWT, whatever TOKEN_FORMAT says,
        so the downstream API checks it against our JWKS without asking us; `act` names who acts
        for `subject`; it lives `ttl` seconds. Kept under its `jti` like any JWT, so revoking its
        grant, introspection and revocation see it."""
        now = int(self._clock())
        record = AccessTokenRecord(
            sub=subject,
            client_id=client_id,
            scope=" ".join(scopes),
            aud=(audience,),
            iss=self._issuer,
            exp=now + ttl,
            iat=now,
            jti=secrets.token_urlsafe(16),
            grant_id=grant_id,
            format="jwt",
            act=act,
        )
        token = await self._keys.sign(_jwt_claims(record))
        key = jti_key(record.jti)
        await self._store.set(key, record.model_dump_json(), ttl=ttl)
        return IssuedTokens(token, ttl, record.scope, record.jti, None, (key,))

    # -- finding --------------------------------------------------------------------------

    async def find_access(self, token: str) -> tuple[AccessTokenRecord, str]:
        """The live access token's record and Store key, or TokenRejected saying why not."""
        if looks_like_jwt(token):
            verified = await self._keys.verify(token)
            if verified is None:
                raise TokenRejected("bad_signature")
            header, claims = verified
            if str(header.get("typ", "")).lower() not in JWT_TYPES:
                raise TokenRejected("not_an_access_token", "JWT is not typ at+jwt")
            jti = claims.get("jti")
            if not isinstance(jti, str):
                raise TokenRejected("malformed", "JWT has no jti")
            key = jti_key(jti)
        else:
            key = access_key(token)
        record = self._access_record(await self._store.get(key), key)
        if record is None:
            raise TokenRejected("unknown", "unknown, expired or revoked token")
        if record.exp <= self._clock():
            raise TokenRejected("expired")
        return record, key

    def _access_record(self, raw: str | None, key: str) -> AccessTokenRecord | None:
        if raw is None:
            return None
        record = self._parsed.get(raw)
        if record is None:
            record = records.parse(AccessTokenRecord, raw, key)
            if record is None:
                return None
            self._parsed.put(raw, record)
        return record

    async def find_refresh(self, token: str) -> RefreshTokenRecord | None:
        if looks_like_jwt(token):
            return None
        record = await records.read(self._store, refresh_key(token), RefreshTokenRecord)
        if record is None or record.exp <= self._clock():
            return None
        return record

    async def find_any(self, token: str, hint: str | None = None) -> FoundToken | None:
        """Access or refresh token, trying the hinted type first; a wrong hint never hides one
        (RFC 7662 section 2.1, RFC 7009 section 2.1)."""
        order = ("access_token", "refresh_token")
        if hint == "refresh_token":
            order = ("refresh_token", "access_token")
        for kind in order:
            if kind == "access_token":
                try:
                    access, key = await self.find_access(token)
                except TokenRejected:
                    continue
                return FoundToken("access_token", access, key)
            refresh = await self.find_refresh(token)
            if refresh is not None:
                return FoundToken("refresh_token", refresh, refresh_key(token))
        return None


def derived_refresh_token(derivation: Derivation) -> str:
    """The refresh token `TokenService.issue` mints with `derivation`."""
    return _credential(derivation, "refresh")


def _credential(derivation: Derivation | None, purpose: Literal["access", "refresh"]) -> str:
    if derivation is None:
        return crypto.new_credential()
    return crypto.derived_credential(derivation.secret, derivation.salt, purpose)


def _jwt_claims(record: AccessTokenRecord) -> dict[str, Any]:
    """RFC 9068 section 2.2; a single audience as a string, the common form."""
    claims: dict[str, Any] = {
        "iss": record.iss,
        "sub": record.sub,
        "aud": record.aud[0] if len(record.aud) == 1 else list(record.aud),
        "exp": record.exp,
        "iat": record.iat,
        "jti": record.jti,
        "client_id": record.client_id,
    }
    if record.scope:
        claims["scope"] = record.scope
    if record.act is not None:
        claims["act"] = record.act
    if record.cnf_jkt is not None:
        claims["cnf"] = {"jkt": record.cnf_jkt}
    return claims
