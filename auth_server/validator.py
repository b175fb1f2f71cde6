"""The in-process TokenValidator (internal mode): the MCP server asks the Store directly.

No HTTP hop and no cache to go stale: revocation is effective on the very next request, for
opaque and JWT tokens alike. The hot path costs one Store read (the token's record) plus, for a
JWT, one signature check against keys already in memory (remembered per token by SigningKeys).
The record's parsing and the Principal built from it are reused while the Store returns the same
stored value (`TokenService` keeps the parsed record, this class the Principal, both bounded):
the read itself, and the expiry check, happen on every call.

A miss costs up to two more reads, to tell "a refresh token or authorization code used as a
bearer" (`not_an_access_token`) from "unknown": that only happens to failing requests, and it
makes the 401's reason precise in logs and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from auth_server.signing_keys import SigningKeys
from auth_server.tokens import AccessTokenRecord, TokenService, looks_like_jwt
from shared import scopes as scope_model
from shared.bounded_cache import BoundedCache
from shared.settings import Settings
from shared.storage.base import StorageUnavailable, Store
from shared.storage.records import code_key, refresh_key
from shared.validation import Principal, TokenRejected, ValidatorUnavailable

MAX_TOKEN_LENGTH = 4096  # longer than any token we mint; refuses absurd input before hashing
PRINCIPALS_MAX = 4096  # Principals kept for records still being presented (oldest dropped first)


class InProcessTokenValidator:
    def __init__(self, store: Store, tokens: TokenService, *, issuer: str, resource: str) -> None:
        self._store = store
        self._tokens = tokens
        self._resource = resource
        self._issuer = issuer
        # id(record) -> (record, Principal); holding the record keeps its id from being reused.
        self._principals: BoundedCache[int, tuple[AccessTokenRecord, Principal]] = BoundedCache(
            PRINCIPALS_MAX, lru=False
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        *,
        keys: SigningKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> InProcessTokenValidator:
        keys = keys or SigningKeys.from_settings(settings, store)
        tokens = TokenService.from_settings(settings, store, keys, clock=clock)
        return cls(store, tokens, issuer=settings.issuer, resource=settings.mcp_resource_url)

    async def validate(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("malformed")
        try:
            record, _ = await self._tokens.find_access(token)
        except TokenRejected as rejected:
            if rejected.reason == "unknown" and not looks_like_jwt(token):
                await self._explain_miss(token)
            raise
        except StorageUnavailable as exc:
            raise ValidatorUnavailable("token store unavailable") from exc
        return self._principal(record)

    def _principal(self, record: AccessTokenRecord) -> Principal:
        known = self._principals.get(id(record))
        if known is not None and known[0] is record:
            return known[1]
        if record.iss != self._issuer:
            raise TokenRejected("wrong_issuer")
        if self._resource not in record.aud:
            raise TokenRejected("wrong_audience", "token was issued for another resource")
        principal = self._new_principal(record)
        self._principals.put(id(record), (record, principal))
        return principal

    @staticmethod
    def _new_principal(record: AccessTokenRecord) -> Principal:
        return Principal(
            subject=record.sub,
            client_id=record.client_id,
            scopes=frozenset(scope_model.parse(record.scope)),
            audience=record.aud,
            issuer=record.iss,
            expires_at=record.exp,
            claims={"jti": record.jti, "iat": record.iat, "grant_id": record.grant_id},
            cnf_jkt=record.cnf_jkt,
        )

    async def _explain_miss(self, token: str) -> None:
        try:
            for key in (refresh_key(token), code_key(token)):  # what else a bearer token might be
                if await self._store.get(key) is not None:
                    raise TokenRejected("not_an_access_token", "not an access token")
        except StorageUnavailable as exc:
            raise ValidatorUnavailable("token store unavailable") from exc
