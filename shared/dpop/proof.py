"""A DPoP proof JWT, checked against the request it came with (RFC 9449 sections 4.2 and 4.3).

`ProofVerifier.verify` performs every check that needs no shared state, in this order, and
raises `ProofRejected` naming the first that fails:
1. one compact JWS of base64url parts, at most MAX_PROOF_LENGTH characters;
2. the header: `typ` is `dpop+jwt`; `alg` is on the allow-list (DPOP_ALGORITHMS: asymmetric
   only, never `none` or HMAC, section 11.6); `jwk` is a *public* key (a private member such as
   `d` is refused: a client that sends its private key has given it away) of the type and curve
   `alg` names, an RSA modulus of 2048 to 8192 bits; no `crit`;
3. the signature, with that key;
4. the claims: `jti` (a string), `htm` equal to the request's method, `htu` equal to the request's
   URL after normalisation (`target.py`), `iat` within DPOP_PROOF_MAX_AGE of now either way;
   with an access token, `ath` equal to its hash (section 4.2); when nonces are required, a
   `nonce` this server issued recently (`nonces.py`, answered `use_dpop_nonce`).
`consume` then makes the proof single use (`replay.py`). The resource server calls it only after
the access token proved valid and bound to the proof's key, so a stranger's junk proofs never
make it store anything.

Hot path: a client signs every proof with the same key, so its header (the `jwk` in it) repeats
byte for byte. Each distinct header is parsed, imported (joserfc) and thumbprinted (RFC 7638,
joserfc) once and kept, by its encoded form, in a BoundedCache (first stored, first dropped); a
proof then costs one signature check (joserfc's algorithm, on `cryptography`: about 80% of the
check, see docs/performance.md), one small JSON parse and the claim comparisons. The signature
checks of one event-loop turn run back to back (`signatures.py`: the later ones run warm).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key
from joserfc.jws import JWSRegistry

from shared import untrusted_json
from shared.bounded_cache import BoundedCache
from shared.dpop import target
from shared.dpop.nonces import DPoPNonces, Freshness, NoncePurpose
from shared.dpop.replay import ReplayGuard, replay_guard_for
from shared.dpop.signatures import BackToBack
from shared.settings import DEFAULT_DPOP_ALGORITHMS, Settings
from shared.storage.base import Store

DPoPError = Literal["invalid_dpop_proof", "use_dpop_nonce"]
PROOF_TYPES = frozenset({"dpop+jwt", "application/dpop+jwt"})
MAX_PROOF_LENGTH = 8192  # an RSA-4096 key in the header is ~1,400 characters
MAX_JTI_LENGTH = 256
KEY_CACHE_SIZE = 1024  # distinct proof headers (keys) kept parsed
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# What key each algorithm verifies with: (kty, the curves allowed; None for RSA).
_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "Ed25519": ("OKP", frozenset({"Ed25519"})),
}


class ProofRejected(Exception):
    """The proof is not acceptable: `invalid_dpop_proof`, or `use_dpop_nonce` (retry with the
    server's nonce). The description is safe to send: it never echoes the proof."""

    def __init__(self, error: DPoPError, description: str) -> None:
        super().__init__(description)
        self.error: DPoPError = error
        self.description = description


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    jkt: str  # RFC 7638 SHA-256 thumbprint of the proof's key: what tokens are bound to
    jti: str
    iat: float
    content_digest: str | None  # the MCP DPoP profile's body digest claim, when the client sent one
    renew_nonce: bool = False  # accepted with last window's nonce: hand out the current one


@dataclass(frozen=True, slots=True)
class _ProofKey:
    """What a proof header says, parsed once."""

    alg: str
    key: Key
    jkt: str


def access_token_hash(token: str) -> str:
    """`ath`: base64url of the SHA-256 of the access token's ASCII bytes (section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _check_rsa_size(jwk: Mapping[str, Any]) -> None:
    """A modulus of MIN_RSA_BITS to MAX_RSA_BITS bits and a small exponent, read before the key is
    imported: a weak key proves little, a huge one costs us work on every proof."""
    modulus, exponent = jwk.get("n"), jwk.get("e")
    if not isinstance(modulus, str) or not isinstance(exponent, str) or len(exponent) > 8:
        raise ProofRejected("invalid_dpop_proof", "The DPoP proof's jwk is not a valid key")
    bits = len(modulus) * 6  # base64url characters, 6 bits each (within a byte of the truth)
    if not MIN_RSA_BITS - 8 <= bits <= MAX_RSA_BITS + 8:
        raise ProofRejected(
            "invalid_dpop_proof", f"The DPoP proof's RSA key must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
        )


class ProofVerifier:
    def __init__(
        self,
        *,
        replay: ReplayGuard,
        algorithms: Collection[str] = DEFAULT_DPOP_ALGORITHMS,
        max_age: float = 300,
        nonces: DPoPNonces | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = [alg for alg in algorithms if alg not in _KEY_TYPES]
        if unknown or not algorithms:
            raise ValueError(f"DPoP algorithms must be asymmetric JWS algorithms; not {unknown}")
        self.algorithms: tuple[str, ...] = tuple(algorithms)
        self._signers = {alg: JWSRegistry.algorithms[alg] for alg in self.algorithms}
        self._replay = replay
        self.max_age = max_age
        self.nonces = nonces
        self._clock = clock
        self._keys: BoundedCache[str, _ProofKey] = BoundedCache(KEY_CACHE_SIZE, lru=False)
        self._signatures = BackToBack()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, *, purpose: NoncePurpose) -> ProofVerifier:
        """`purpose`: "token" at the authorization server, "resource" at the MCP server (their
        nonces are their own)."""
        return cls(
            replay=replay_guard_for(store),
            algorithms=settings.dpop_algorithms,
            max_age=settings.dpop_proof_max_age,
            nonces=DPoPNonces(store, purpose=purpose) if settings.dpop_nonce == "required" else None,
        )

    async def verify(
        self, proof: str, *, method: str, url: str, access_token: str | None = None
    ) -> VerifiedProof:
        """Every stateless check of the proof (module docstring); `url` is the URL the request was
        for, as this server is configured to be reached (its query, if any, is ignored)."""
        if len(proof) > MAX_PROOF_LENGTH or not _COMPACT_JWS.fullmatch(proof):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof is not a compact JWT")
        header, payload, signature = proof.split(".")
        proof_key = self._keys.get(header) or self._parse_header(header)
        signer = self._signers[proof_key.alg]

        def signature_valid() -> bool:
            try:
                return signer.verify(f"{header}.{payload}".encode(), _b64decode(signature), proof_key.key)
            except (JoseError, ValueError, TypeError, binascii.Error):
                return False

        if not await self._signatures.check(signature_valid):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof signature does not verify")
        try:
            claims = untrusted_json.parse(
                _b64decode(payload), max_bytes=MAX_PROOF_LENGTH, max_depth=untrusted_json.NATIVE_DEPTH_LIMIT
            )
        except (ValueError, binascii.Error):
            claims = None
        if not isinstance(claims, dict):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof's claims are not a JSON object")
        return await self._check_claims(claims, proof_key, method, url, access_token)

    async def consume(self, proof: VerifiedProof) -> None:
        """Use the proof up: ProofRejected if it (its `jti`, for its key) was seen before."""
        if not await self._replay.first_use(proof.jkt, proof.jti, until=proof.iat + self.max_age):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof was already used (jti)")

    async def fresh_nonce(self) -> str | None:
        """The nonce to put in a `DPoP-Nonce` header; None when nonces are off."""
        return None if self.nonces is None else await self.nonces.current()

    def _parse_header(self, encoded: str) -> _ProofKey:
        try:
            header = untrusted_json.parse(_b64decode(encoded), max_bytes=MAX_PROOF_LENGTH)
        except (ValueError, binascii.Error):
            header = None
        if not isinstance(header, dict):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof header is not a JSON object")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in PROOF_TYPES:
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof's typ must be dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._signers:
            raise ProofRejected(
                "invalid_dpop_proof", f"The DPoP proof's alg must be one of {' '.join(self.algorithms)}"
            )
        if "crit" in header:
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof header has critical extensions")
        key = self._public_key(header.get("jwk"), alg)
        proof_key = _ProofKey(alg, key, key.thumbprint())
        self._keys.put(encoded, proof_key)
        return proof_key

    @staticmethod
    def _public_key(jwk: Any, alg: str) -> Key:
        if not isinstance(jwk, dict):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof header has no jwk")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise ProofRejected(
                "invalid_dpop_proof", "The DPoP proof's jwk must be a public key; it holds a private one"
            )
        kty, curves = _KEY_TYPES[alg]
        if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
            raise ProofRejected("invalid_dpop_proof", f"The DPoP proof's jwk is not a key for {alg}")
        if kty == "RSA":
            _check_rsa_size(jwk)
        try:
            return import_key(jwk)
        except (JoseError, ValueError, TypeError, binascii.Error):
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof's jwk is not a valid key") from None

    async def _check_claims(
        self,
        claims: Mapping[str, Any],
        proof_key: _ProofKey,
        method: str,
        url: str,
        access_token: str | None,
    ) -> VerifiedProof:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof has no usable jti")
        if claims.get("htm") != method:
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof's htm is not this request's method")
        htu = claims.get("htu")
        expected = target.normalise(url.split("?", 1)[0].split("#", 1)[0])
        if not isinstance(htu, str) or expected is None or target.normalise(htu) != expected:
            raise ProofRejected("invalid_dpop_proof", "The DPoP proof's htu is not this request's URL")
        iat = _number(claims.get("iat"))
        now = self._clock()
        if iat is None or abs(now - iat) > self.max_age:
            raise ProofRejected(
                "invalid_dpop_proof", "The DPoP proof's iat is missing or too far from the server's clock"
            )
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(
                ath.encode(), access_token_hash(access_token).encode()
            ):
                raise ProofRejected(
                    "invalid_dpop_proof", "The DPoP proof's ath is not the hash of this access token"
                )
        renew = False
        if self.nonces is not None:
            freshness = await self.nonces.freshness(claims.get("nonce"))
            if freshness is Freshness.STALE:
                raise ProofRejected("use_dpop_nonce", "A DPoP nonce from this server is required")
            renew = freshness is Freshness.RENEW
        digest = claims.get("content_digest")
        return VerifiedProof(
            jkt=proof_key.jkt,
            jti=jti,
            iat=iat,
            content_digest=digest if isinstance(digest, str) else None,
            renew_nonce=renew,
        )
