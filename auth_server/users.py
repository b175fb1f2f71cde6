"""Local users and their password hashes.

Users come from AUTH_USERS as `{"name": "<hash>"}`; with none configured the development user
`demo` / `demo` exists. `scripts/hash-password.py` makes hashes. Both formats carry their own
parameters, so a deployment raises the cost later without breaking the hashes it has:

* **argon2id** (the default), the PHC string `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`
  through argon2-cffi: OWASP's Password Storage Cheat Sheet's first choice, with its parameters
  (19 MiB, 2 passes, 1 lane). Its scrypt minimum, N=2^17 r=8 p=1, costs 128 MiB per hash and
  about 0.5 to 1.3 s on a 2-core machine, against 19 MiB and about 70 ms here: at the same
  guessing cost, sign-in stays quick and several can run at once without a memory spike.
* **scrypt**, `scrypt$n$r$p$salt$hash` (salt and hash in unpadded base64url), the earlier
  default: still verified, so existing AUTH_USERS keep working. Start-up warns about any hash
  below OWASP's minimum, and about users whose hash costs differ (see below).

No user-name oracle: an unknown name is checked against a decoy with the *same* scheme and
parameters as the configured hashes (the ones most of them use, when they differ), so it costs
exactly one hash computation of that cost, like a known name with a wrong password, and the
answer is the same. Each computation is counted, with its scheme and parameters, in
`mcpref_password_hashes_total` (what the security tests compare; no stopwatch involved). With
hashes of different costs, users whose cost differs from the decoy's can be told apart by
timing: start-up names them, rehash them with the script.

Verification is CPU- and memory-bound, so it runs in worker threads, at most `concurrency` at
once (memory: `concurrency` times one hash's), with at most `max_waiting` more sign-ins queued;
past that a sign-in is refused at once (`SignInBusy`, 503 with Retry-After) instead of piling up.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.to_thread
from argon2 import Parameters, PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from auth_server.models import MACHINE_SUBJECT_PREFIX
from shared import metrics
from shared.settings import Settings
from shared.validators.api_keys import API_KEY_SUBJECT_PREFIX

logger = logging.getLogger(__name__)

DEV_USER = "demo"
DEV_PASSWORD = "demo"  # noqa: S105 - the documented development login, used when AUTH_USERS is empty

# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1 (its equal-cost alternatives
# trade memory for passes down to m=7 MiB, t=5: the minimum below is that family's least work).
ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM = 19 * 1024, 2, 1
ARGON2_MIN_WORK = 7 * 1024 * 5  # memory (KiB) x passes
ARGON2_MAX_MEMORY_KIB = 1024 * 1024  # a configured hash asking for more than 1 GiB is a typo
# OWASP's scrypt equivalents: N=2^17 r=8 p=1 down to N=2^13 r=8 p=10.
SCRYPT_MIN_WORK = 2**13 * 8 * 10  # n x r x p
SCRYPT_MAX_MEMORY = 256 * 1024 * 1024
SALT_BYTES, HASH_BYTES = 16, 32
MAX_PASSWORD_BYTES = 1024

MAX_CONCURRENCY = 8  # hashes computed at once, at most (one per core, up to this)
WAITING_PER_SLOT = 16  # sign-ins that may queue for each of those before SignInBusy

_VERIFIER = PasswordHasher()  # verify() takes every parameter from the hash it checks


class BadPasswordHash(ValueError):
    """A configured hash is in neither format, or asks for absurd parameters."""


class SignInBusy(Exception):
    """Every hashing slot is taken and the queue is full: answer 503, try again shortly."""


class PasswordHash(Protocol):
    """A stored password hash of either scheme."""

    @property
    def scheme(self) -> str: ...

    @property
    def parameters(self) -> str:
        """What verifying costs, as `name=value,...` (the same for a hash and its decoy)."""

    @property
    def below_minimum(self) -> bool:
        """Cheaper than OWASP's minimum for its scheme."""

    def matches(self, password: str) -> bool: ...

    def decoy(self) -> PasswordHash:
        """A hash with the same scheme and parameters that no password matches."""


@dataclass(frozen=True, slots=True)
class Argon2idHash:
    encoded: str
    params: Parameters

    scheme = "argon2id"

    @classmethod
    def parse(cls, encoded: str) -> Argon2idHash:
        try:
            params = extract_parameters(encoded)
        except (InvalidHashError, ValueError):
            raise BadPasswordHash(
                "not a valid $argon2id$ hash (make one with scripts/hash-password.py)"
            ) from None
        if params.type is not Type.ID:
            raise BadPasswordHash("argon2i and argon2d are not accepted; use argon2id")
        if params.memory_cost > ARGON2_MAX_MEMORY_KIB or params.parallelism > 16 or params.time_cost > 64:
            raise BadPasswordHash(
                "argon2id parameters out of range (m at most 1 GiB, t at most 64, p at most 16)"
            )
        return cls(encoded, params)

    @property
    def parameters(self) -> str:
        return f"m={self.params.memory_cost},t={self.params.time_cost},p={self.params.parallelism}"

    @property
    def below_minimum(self) -> bool:
        return self.params.memory_cost * self.params.time_cost < ARGON2_MIN_WORK

    def matches(self, password: str) -> bool:
        metrics.password_hashed(self.scheme, self.parameters)
        try:
            return _VERIFIER.verify(self.encoded, password)  # argon2's own constant-time compare
        except VerificationError:  # a mismatch (VerifyMismatchError) or a hash it cannot check
            return False

    def decoy(self) -> Argon2idHash:
        p = self.params
        salt, digest = secrets.token_bytes(p.salt_len), secrets.token_bytes(p.hash_len)
        encoded = (
            f"$argon2id$v={p.version}$m={p.memory_cost},t={p.time_cost},p={p.parallelism}"
            f"${_phc_b64(salt)}${_phc_b64(digest)}"
        )
        return Argon2idHash(encoded, p)


@dataclass(frozen=True, slots=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    hash: bytes

    scheme = "scrypt"

    @classmethod
    def parse(cls, encoded: str) -> ScryptHash:
        parts = encoded.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise BadPasswordHash("expected scrypt$n$r$p$salt$hash")
        try:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, digest = _b64decode(parts[4]), _b64decode(parts[5])
        except ValueError:
            raise BadPasswordHash("n, r and p must be integers, salt and hash base64url") from None
        if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(digest) < 16:
            raise BadPasswordHash("n must be a power of two, r and p positive, salt and hash present")
        if 128 * n * r > SCRYPT_MAX_MEMORY:
            raise BadPasswordHash("scrypt parameters out of range (128 x n x r at most 256 MiB)")
        return cls(n, r, p, salt, digest)

    def encode(self) -> str:
        return f"scrypt${self.n}${self.r}${self.p}${_b64encode(self.salt)}${_b64encode(self.hash)}"

    @property
    def parameters(self) -> str:
        return f"n={self.n},r={self.r},p={self.p}"

    @property
    def below_minimum(self) -> bool:
        return self.n * self.r * self.p < SCRYPT_MIN_WORK

    def matches(self, password: str) -> bool:
        metrics.password_hashed(self.scheme, self.parameters)
        computed = _scrypt(password, self.salt, self.n, self.r, self.p, len(self.hash))
        return hmac.compare_digest(computed, self.hash)

    def decoy(self) -> ScryptHash:
        return ScryptHash(
            self.n, self.r, self.p, secrets.token_bytes(len(self.salt)), secrets.token_bytes(len(self.hash))
        )


def parse_password_hash(encoded: str) -> PasswordHash:
    if encoded.startswith("$argon2"):
        return Argon2idHash.parse(encoded)
    if encoded.startswith("scrypt$"):
        return ScryptHash.parse(encoded)
    raise BadPasswordHash(
        "expected an $argon2id$... or scrypt$... hash (make one with scripts/hash-password.py)"
    )


def hash_password(
    password: str,
    *,
    memory_kib: int = ARGON2_MEMORY_KIB,
    time_cost: int = ARGON2_TIME_COST,
    parallelism: int = ARGON2_PARALLELISM,
) -> str:
    """An argon2id hash for AUTH_USERS, at OWASP's parameters unless told otherwise."""
    hasher = PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=HASH_BYTES,
        salt_len=SALT_BYTES,
        type=Type.ID,
    )
    return hasher.hash(password)


def scrypt_hash(password: str, *, n: int, r: int = 8, p: int = 1) -> str:
    """An scrypt hash (the earlier format, still verified): cheap ones make quick test users."""
    salt = secrets.token_bytes(SALT_BYTES)
    return ScryptHash(n, r, p, salt, _scrypt(password, salt, n, r, p, HASH_BYTES)).encode()


def decoy_for(hashes: Iterable[PasswordHash]) -> PasswordHash:
    """The decoy unknown names are checked against: the scheme and parameters most configured
    hashes use (the first such hash's on a tie), so most users cannot be told from no user."""
    by_work: dict[tuple[str, str], list[PasswordHash]] = collections.defaultdict(list)
    for stored in hashes:
        by_work[(stored.scheme, stored.parameters)].append(stored)
    if not by_work:
        return _default_decoy()
    most = max(by_work.values(), key=len)  # max() keeps the first of equals: config order
    return most[0].decoy()


def default_concurrency() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_CONCURRENCY))


class UserDirectory:
    """Checks user names and passwords against the configured hashes."""

    def __init__(
        self,
        hashes: Mapping[str, PasswordHash],
        *,
        concurrency: int | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self._hashes = dict(hashes)
        self._decoy = decoy_for(self._hashes.values())
        slots = concurrency or default_concurrency()
        self._slots = anyio.CapacityLimiter(slots)
        self._max_pending = slots + (WAITING_PER_SLOT * slots if max_waiting is None else max_waiting)
        self._pending = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> UserDirectory:
        """AUTH_USERS, or the dev user demo/demo when empty; ValueError names a bad entry."""
        if not settings.auth_users:
            return cls({DEV_USER: _dev_user_hash()})
        hashes: dict[str, PasswordHash] = {}
        for name, encoded in settings.auth_users.items():
            if not name or len(name) > 100 or any(ch <= " " for ch in name):
                raise ValueError(f"AUTH_USERS: invalid user name {name!r}")
            if "://" in name:  # reserved: federated subjects are "<issuer URL>#<sub>" (upstream.py)
                raise ValueError(f"AUTH_USERS: user name {name!r} must not contain '://'")
            # Machine clients' subjects (models.py) and API keys' (shared/validators/api_keys.py).
            for reserved in (MACHINE_SUBJECT_PREFIX, API_KEY_SUBJECT_PREFIX):
                if name.startswith(reserved):
                    raise ValueError(f"AUTH_USERS: user name {name!r} must not start with {reserved!r}")
            try:
                hashes[name] = parse_password_hash(encoded)
            except BadPasswordHash as exc:
                raise ValueError(f"AUTH_USERS[{name!r}]: {exc}") from None
        directory = cls(hashes)
        directory.warn_about_weak_hashes()
        return directory

    def warn_about_weak_hashes(self) -> None:
        """Log, once at start-up, what an operator should rehash (the names, never the hashes)."""
        weak = sorted(name for name, stored in self._hashes.items() if stored.below_minimum)
        if weak:
            logger.warning(
                "AUTH_USERS: the hashes of %s are below OWASP's minimum cost; rehash them with "
                "scripts/hash-password.py",
                ", ".join(weak),
            )
        decoy = (self._decoy.scheme, self._decoy.parameters)
        apart = sorted(n for n, s in self._hashes.items() if (s.scheme, s.parameters) != decoy)
        if apart:
            logger.warning(
                "AUTH_USERS: the hashes of %s cost other than most (%s %s), so timing tells those "
                "names from unknown ones; rehash them with scripts/hash-password.py",
                ", ".join(apart),
                *decoy,
            )

    def knows(self, username: str) -> bool:
        """For audit lines only: a name that is not a user may be a password typed in the wrong box."""
        return username in self._hashes

    async def authenticate(self, username: str, password: str) -> str | None:
        """The user's subject (their name) when the password is right, else None; SignInBusy when
        too many sign-ins are already computing or waiting."""
        if self._pending >= self._max_pending:
            raise SignInBusy
        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(self._check, username, password, limiter=self._slots)
        finally:
            self._pending -= 1

    def _check(self, username: str, password: str) -> str | None:
        """Exactly one hash computation, of the same cost, for a known and an unknown name."""
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return None
        known = self._hashes.get(username)
        correct = (known or self._decoy).matches(password)
        return username if known is not None and correct else None


@functools.cache
def _dev_user_hash() -> PasswordHash:
    """Hashed once per process: every app built in it (tests build many) shares the dev user."""
    return parse_password_hash(hash_password(DEV_PASSWORD))


@functools.cache
def _default_decoy() -> PasswordHash:
    return Argon2idHash.parse(hash_password(secrets.token_urlsafe(16))).decoy()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAX_MEMORY, dklen=length
    )


def _phc_b64(raw: bytes) -> str:
    """The PHC string format's base64: standard alphabet, no padding."""
    return base64.b64encode(raw).rstrip(b"=").decode("ascii")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
