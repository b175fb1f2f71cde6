"""The keys that sign RFC 9068 JWT access tokens, their rotation, and the public JWKS.

Two sources, chosen by the JWT_SIGNING_KEYS setting:

* a private JWKS file (production: keys come from a secret manager). The FIRST key signs; every
  key is published. To rotate, put a new key first, keep the old one until the last token it
  signed has expired (ACCESS_TOKEN_TTL), then remove it, restarting after each edit.
* unset: a P-256 key is generated on first use and kept in the Store under `auth:jwks`, so every
  instance sharing the Store signs with and publishes the same keys. `rotate()` adds a new
  signing key and retires the old one; a retired key stays published for ACCESS_TOKEN_TTL more
  seconds, because tokens it signed are valid that long. Note the private keys then live in the
  Store: protect Redis like any secret store (ACLs, TLS), or use the file.

Only ES256 (P-256) and RS256 (RSA >= 2048 bits) keys are accepted; verification pins the
algorithm to the key's own, so `alg: none` and HS256-with-a-public-key confusion cannot work.
Keys are cached in memory and re-read from the Store at most every `refresh_interval` seconds,
or sooner when a token names a key id this instance has not seen (another instance rotated).
Verified signatures are remembered (bounded LRU by token digest) so a token used on every
request is checked cryptographically once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from pydantic import BaseModel

from auth_server import crypto
from shared.bounded_cache import BoundedCache
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import JWKS_KEY

Algorithm = Literal["ES256", "RS256"]
ALGORITHMS: tuple[Algorithm, ...] = ("ES256", "RS256")
REFRESH_INTERVAL = 60.0
VERIFIED_CACHE_SIZE = 10_000
UNKNOWN_KID_RELOAD_INTERVAL = 5.0  # a flood of made-up kids must not become a flood of reads


class SigningKeyError(ValueError):
    """The configured key material is unusable, with the reason. A JWT_SIGNING_KEYS file is read
    when the app is built, so a missing or bad one stops start-up with one line (a ValueError,
    like any bad configuration) instead of 500s from /token and /jwks later."""


class StoredKey(BaseModel):
    """One private key as kept under `auth:jwks`, with its life cycle."""

    jwk: dict[str, Any]
    created_at: int
    retired_at: int | None = None


class StoredKeySet(BaseModel):
    keys: list[StoredKey]  # newest first; keys[0] signs unless retired


class KeyInfo(BaseModel):
    """What an administrator sees of a key: public facts only."""

    kid: str
    alg: Algorithm
    signs: bool
    source: Literal["store", "file"]
    created_at: int | None = None  # Store-kept keys: their life cycle
    retired_at: int | None = None


@dataclass(frozen=True, slots=True)
class _Loaded:
    signer: tuple[ECKey | RSAKey, Algorithm] | None  # None: no key exists yet
    verifiers: dict[str, tuple[ECKey | RSAKey, Algorithm]]  # kid -> key, its algorithm
    public_jwks: dict[str, Any]
    loaded_at: float


def _algorithm_of(key: ECKey | RSAKey) -> Algorithm:
    if isinstance(key, ECKey):
        if key.curve_name != "P-256":
            raise SigningKeyError(f"EC key {key.kid!r} must use P-256 (ES256), not {key.curve_name}")
        return "ES256"
    if key.raw_value.key_size < 2048:
        raise SigningKeyError(f"RSA key {key.kid!r} is shorter than 2048 bits")
    return "RS256"


def _import_private(data: dict[str, Any]) -> tuple[ECKey | RSAKey, Algorithm]:
    try:
        key = import_key(data)
    except (JoseError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"not a usable JWK: {exc}") from None
    if not isinstance(key, ECKey | RSAKey) or not key.is_private:
        raise SigningKeyError("signing keys must be private EC (P-256) or RSA keys")
    if not key.kid:
        key = import_key({**data, "kid": key.thumbprint()})
        assert isinstance(key, ECKey | RSAKey)
    alg = _algorithm_of(key)
    declared = data.get("alg")
    if declared is not None and declared != alg:
        raise SigningKeyError(f"key {key.kid!r} declares alg {declared!r}; only {alg} fits it")
    return key, alg


def _public_jwk(key: ECKey | RSAKey, alg: Algorithm) -> dict[str, Any]:
    public: dict[str, Any] = {**key.as_dict(private=False), "kid": key.kid, "alg": alg, "use": "sig"}
    return public


def generate_key() -> dict[str, Any]:
    """A fresh private P-256 JWK with its RFC 7638 thumbprint as kid."""
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    return {**key.as_dict(private=True), "alg": "ES256"}


class SigningKeys:
    def __init__(
        self,
        store: Store,
        *,
        file: Path | None,
        retire_grace: int,
        create_on_read: bool,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> None:
        """Keys from the private JWKS `file`, or (None) kept in `store`; a retired key stays
        published `retire_grace` seconds (the access token lifetime). Keys are created on first
        need: by signing, or, with `create_on_read`, by serving or verifying too (JWT mode)."""
        self._file = file
        self._store = store
        self._retire_grace = retire_grace
        self._clock = clock
        self._refresh_interval = refresh_interval
        self._create_on_read = create_on_read
        self._loaded: _Loaded | None = None
        self._last_forced_reload = 0.0
        # Signatures already checked, by token digest: a token's signature never changes, so the
        # hot path re-verifies nothing (ES256 costs ~100 us). Revocation and expiry are still
        # decided per call by the caller's Store read.
        self._verified: BoundedCache[str, tuple[dict[str, Any], dict[str, Any]]] = BoundedCache(
            VERIFIED_CACHE_SIZE
        )
        if self._file is not None:  # file keys never change while the process runs: load them now
            try:
                self._loaded = self._from_private_jwks(self._read_file(), clock())
            except SigningKeyError as exc:
                where = f"JWT_SIGNING_KEYS {self._file}: "
                raise SigningKeyError(str(exc) if str(exc).startswith(where) else where + str(exc)) from None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        refresh_interval: float = REFRESH_INTERVAL,
    ) -> SigningKeys:
        """A deployment issuing opaque tokens never writes a private key into its Store."""
        return cls(
            store,
            file=Path(settings.jwt_signing_keys) if settings.jwt_signing_keys else None,
            retire_grace=settings.access_token_ttl,
            create_on_read=settings.token_format == "jwt",  # noqa: S105 (not a password)
            clock=clock,
            refresh_interval=refresh_interval,
        )

    # -- public API -----------------------------------------------------------------------

    async def sign(self, claims: dict[str, Any]) -> str:
        """An RFC 9068 access token: header typ `at+jwt`, alg and kid of the current key."""
        signer = (await self._get(create=True)).signer
        if signer is None:  # only a concurrent deletion of auth:jwks could get here
            signer = (await self._get(force=True, create=True)).signer
            assert signer is not None
        key, alg = signer
        header = {"typ": "at+jwt", "alg": alg, "kid": key.kid}
        return jwt.encode(header, claims, key, algorithms=[alg])

    async def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(header, claims) when `token` carries a valid signature by one of our keys, else None.

        Only the signature is checked here; the caller decides about typ, iss, aud and exp.
        """
        cache_key = crypto.digest(token)
        cached = self._verified.get(cache_key)
        if cached is not None:
            loaded = await self._get(create=self._create_on_read)
            if cached[0]["kid"] in loaded.verifiers:  # a withdrawn key invalidates its hits
                return cached
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError):
            return None
        kid = header.get("kid")
        if not isinstance(kid, str):
            return None
        loaded = await self._get(create=self._create_on_read)
        entry = loaded.verifiers.get(kid)
        if entry is None and self._may_force_reload():
            loaded = await self._get(force=True, create=self._create_on_read)
            entry = loaded.verifiers.get(kid)
        if entry is None:
            return None
        key, alg = entry
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError):
            return None
        result = dict(decoded.header), dict(decoded.claims)
        self._verified.put(cache_key, result)
        return result

    async def public_jwks(self) -> dict[str, Any]:
        return (await self._get(create=self._create_on_read)).public_jwks

    async def describe(self) -> list[KeyInfo]:
        """The keys published now, the signing one first; nothing is generated by asking."""
        if self._file is not None:
            imported = [_import_private(data) for data in self._read_file()]
            return [
                KeyInfo(kid=str(key.kid), alg=alg, signs=index == 0, source="file")
                for index, (key, alg) in enumerate(imported)
            ]
        stored = await self._read_store()
        now = self._clock()
        live = [
            k
            for k in (stored.keys if stored else [])
            if k.retired_at is None or k.retired_at + self._retire_grace > now
        ]
        signer = next((k for k in live if k.retired_at is None), live[0] if live else None)
        return [
            KeyInfo(
                kid=str(k.jwk["kid"]),
                alg=_import_private(k.jwk)[1],
                signs=k is signer,
                source="store",
                created_at=k.created_at,
                retired_at=k.retired_at,
            )
            for k in sorted(live, key=lambda k: k is not signer)
        ]

    async def rotate(self) -> str:
        """Start signing with a new key (Store-kept keys only); returns its kid.

        Concurrent rotations on two instances may lose one of the new keys (last write wins);
        rotation is an operator action, so that is acceptable and documented.
        """
        if self._file is not None:
            raise SigningKeyError("keys come from JWT_SIGNING_KEYS: rotate by editing that file")
        now = int(self._clock())
        stored = await self._read_store() or StoredKeySet(keys=[])
        kept = [
            k.model_copy(update={"retired_at": k.retired_at or now})
            for k in stored.keys
            if k.retired_at is None or k.retired_at + self._retire_grace > now
        ]
        fresh = StoredKey(jwk=generate_key(), created_at=now)
        await records.write(self._store, JWKS_KEY, StoredKeySet(keys=[fresh, *kept]))
        self._loaded = None
        return str(fresh.jwk["kid"])

    # -- loading --------------------------------------------------------------------------

    def _may_force_reload(self) -> bool:
        now = self._clock()
        if now - self._last_forced_reload < UNKNOWN_KID_RELOAD_INTERVAL:
            return False
        self._last_forced_reload = now
        return True

    async def _get(self, *, create: bool, force: bool = False) -> _Loaded:
        loaded = self._loaded
        fresh = loaded is not None and (
            self._file is not None or self._clock() - loaded.loaded_at < self._refresh_interval
        )
        if loaded is not None and fresh and not force and (loaded.signer or not create):
            return loaded
        self._loaded = loaded = await self._load(create)
        return loaded

    async def _load(self, create: bool) -> _Loaded:
        now = self._clock()
        if self._file is not None:
            return self._from_private_jwks(self._read_file(), now)
        raw = await self._store.get(JWKS_KEY)
        stored = records.parse(StoredKeySet, raw, JWKS_KEY)
        if (stored is None or not stored.keys) and not create:
            return _Loaded(None, {}, {"keys": []}, now)
        if stored is None or not stored.keys:
            candidate = StoredKeySet(keys=[StoredKey(jwk=generate_key(), created_at=int(now))])
            # Several instances may start at once: the first writer wins, the others adopt its key.
            # An unreadable key set signs nothing: it is replaced, as a rotation would.
            unreadable = raw is not None and stored is None
            if not await records.write(self._store, JWKS_KEY, candidate, only_if_absent=not unreadable):
                stored = await self._read_store()
            stored = stored if stored and stored.keys else candidate
        live = [k for k in stored.keys if k.retired_at is None or k.retired_at + self._retire_grace > now]
        active = [k for k in live if k.retired_at is None] or live
        if not active:
            raise SigningKeyError(f"{JWKS_KEY} holds no usable key")
        ordered = [active[0].jwk, *(k.jwk for k in live if k is not active[0])]
        return self._from_private_jwks(ordered, now)

    async def _read_store(self) -> StoredKeySet | None:
        return await records.read(self._store, JWKS_KEY, StoredKeySet)

    def _read_file(self) -> list[dict[str, Any]]:
        assert self._file is not None
        expected = 'expected a JSON Web Key Set, {"keys": [...]} (docs/deployment.md: generate_key)'
        try:
            text = self._file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SigningKeyError(f"JWT_SIGNING_KEYS {self._file}: {exc}") from None
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise SigningKeyError(f"JWT_SIGNING_KEYS {self._file}: not JSON ({exc}); {expected}") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list) or not keys:
            raise SigningKeyError(f"JWT_SIGNING_KEYS {self._file}: {expected}")
        return keys

    @staticmethod
    def _from_private_jwks(keys: list[dict[str, Any]], now: float) -> _Loaded:
        imported = [_import_private(data) for data in keys]
        signer, signer_alg = imported[0]
        verifiers = {key.kid: (key, alg) for key, alg in imported if key.kid}
        if len(verifiers) != len(imported):
            raise SigningKeyError("every signing key needs a distinct kid")
        public = {"keys": [_public_jwk(key, alg) for key, alg in imported]}
        return _Loaded((signer, signer_alg), verifiers, public, now)
