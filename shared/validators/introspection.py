"""RFC 7662 token introspection: external mode's validator, with a bounded cache.

The MCP server authenticates to the authorization server's introspection endpoint as its own
confidential client (client_secret_basic, or client_secret_post: INTROSPECTION_AUTH_METHOD) and
asks about each token it has not seen recently. The endpoint is the `introspection_endpoint` of
the issuer's metadata (`discovery.py`), so the bundled AS and third-party providers are reached
the same way; a provider that advertises none cannot vouch for opaque tokens, which are then
refused (401). The claims naming the user and the scopes follow TOKEN_SUBJECT_CLAIM and
TOKEN_SCOPE_CLAIM, as for JWTs; an active answer without the subject claim is refused (401), as
a JWT without one is: identity is never guessed from another claim. A `cnf.jkt` in the answer
(RFC 9449 section 6.2) makes the token DPoP-bound, as in a JWT. An active answer counts only
for an accepted audience (this server's MCP URL, or one of ACCEPTED_AUDIENCES) and, when it names
an issuer, the trusted one (or one of ACCEPTED_ISSUERS): the same rules as for JWTs
(`claims.names_accepted_audience`).

Why the cache looks the way it does:
- Active results are kept for at most `cache_ttl` seconds and never past the token's `exp`, so a
  revoked token keeps working here for no longer than `cache_ttl` (the documented revocation lag
  of external mode) and an expired one never does.
- Inactive results are kept for `negative_ttl` seconds, so a client hammering with a dead token
  costs one introspection call per few seconds, not one per request.
- Entries are keyed by the token's SHA-256 digest, never the token, in an LRU bounded by
  `cache_size`: a heap dump or a cache bug cannot leak credentials, and memory stays bounded.
- Concurrent requests carrying the same uncached token share one introspection call.
- Each introspection call is spent from the budget of the caller that caused it
  (`shared.validation.remote_lookups`: the MCP server's limit per client address on unknown
  tokens, UNKNOWN_TOKENS_PER_MINUTE). A call that finds the token unknown or inactive stays spent;
  once a caller has none left, its uncached tokens are refused (`LookupRefused`) without a call,
  while cached answers, and every other caller, are served as before. Random junk tokens never
  repeat, so the negative cache alone could not bound them.
- An answer of "inactive" for a token whose cached active result just lapsed, before its `exp`,
  means the AS revoked it: the principal is reported to `revocations`
  (`shared/revocations.py`), so what is cached per principal elsewhere can be dropped.
- The authorization server being down, slow, or answering nonsense is `ValidatorUnavailable`
  (503 + Retry-After at the middleware), bounded by `timeout` as a total deadline, never a hang or
  a 500. Such failures are not cached.
- The authorization server refusing this server's own credential (401, 403 or `invalid_client`)
  means one of two things. With INTROSPECTION_CLIENT_SECRET unset (`credential_set` False: the
  development default, which only the bundled authorization server knows) this server has *no*
  credential at that provider, as with a third-party OpenID provider and no setting: nothing will
  change by retrying, so opaque tokens are refused (401), the error is logged, and for
  `CREDENTIAL_RETRY_SECONDS` they are refused without asking again. With a secret configured, a
  refusal is a broken configuration (a rotated secret) that clients cannot fix by signing in
  again: 503, as for an authorization server that cannot answer, and the error is logged.
  `credential_accepted` asks once at start, so the log says so before the first client does.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import quote

import httpx2

from shared import tracing, untrusted_json
from shared.bounded_cache import BoundedCache
from shared.logs import request_id_header
from shared.retry_after import UNAVAILABLE
from shared.revocations import RevocationFeed
from shared.settings import IntrospectionAuthMethod, Settings
from shared.validation import (
    FailureReason,
    LookupBudget,
    LookupRefused,
    Principal,
    TokenRejected,
    ValidatorUnavailable,
    current_lookup_budget,
)
from shared.validators.claims import (
    audience_of,
    confirmation_jkt,
    names_accepted_audience,
    numeric_date,
    scope_values,
)
from shared.validators.discovery import ProviderMetadata

logger = logging.getLogger(__name__)

_MAX_RETRY_AFTER = 300
CREDENTIAL_RETRY_SECONDS = 60.0
NO_CREDENTIAL = "this server has no introspection credential at the authorization server"
_MAX_RESPONSE_BYTES = 256 * 1024  # an introspection answer is a few hundred bytes; a provider's claims fit
# RFC 7662 token_type values that are certainly not access tokens (RFC 6749 token types such as
# "Bearer" and the RFC 7009 hint "access_token" are accepted).
_NOT_ACCESS_TOKEN_TYPES = frozenset({"refresh_token", "id_token", "authorization_code"})


class _Entry:
    """A cached answer: a Principal, or the (reason, description) of a rejection.

    Rejections are stored as data and raised afresh on each hit: re-raising one exception
    instance would grow its traceback on every request.
    """

    __slots__ = ("expires", "outcome")

    def __init__(self, outcome: Principal | tuple[FailureReason, str], expires: float) -> None:
        self.outcome = outcome
        self.expires = expires


class IntrospectionValidator:
    """A TokenValidator that asks an RFC 7662 endpoint, caching answers within strict bounds."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        metadata: ProviderMetadata | None = None,
        client_id: str,
        client_secret: str,
        credential_set: bool = True,
        resource: str,
        issuer: str | None,
        extra_audiences: Collection[str] = (),
        extra_issuers: Collection[str] = (),
        revocations: RevocationFeed | None = None,
        auth_method: IntrospectionAuthMethod = "client_secret_basic",
        scope_claim: str = "scope",
        subject_claim: str = "sub",
        cache_ttl: float = 30,
        negative_ttl: float = 5,
        cache_size: int = 10_000,
        timeout: float = 3.0,
        retry_after: int = UNAVAILABLE,
        client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if endpoint is None and metadata is None:
            raise ValueError("IntrospectionValidator needs endpoint or metadata")
        self._endpoint = endpoint
        self._metadata = metadata
        # RFC 6749 section 2.3.1: form-urlencode the id and secret before Basic encoding; with
        # client_secret_post they travel in the body and the request carries no Authorization.
        self._auth: httpx2.Auth = httpx2.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
        self._post_credentials: dict[str, str] | None = None
        if auth_method == "client_secret_post":
            self._auth = httpx2.Auth()
            self._post_credentials = {"client_id": client_id, "client_secret": client_secret}
        self._scope_claim = scope_claim
        self._subject_claim = subject_claim
        self._audiences = frozenset({resource, *extra_audiences})
        self._issuer = issuer
        self._issuers = frozenset({issuer, *extra_issuers}) if issuer is not None else frozenset()
        self._revocations = revocations
        self._cache_ttl = max(0.0, float(cache_ttl))
        self._negative_ttl = max(0.0, float(negative_ttl))
        self._timeout = float(timeout)
        self._retry_after = retry_after
        self._http = tracing.PeerClient(client, timeout=timeout)
        self._clock = clock
        self._cache: BoundedCache[bytes, _Entry] = BoundedCache(max(1, int(cache_size)))
        self._inflight: dict[bytes, asyncio.Future[Principal]] = {}
        self.calls = 0  # introspection requests sent (observability and tests)
        self.cache_hits = 0  # answered from the cache (read by shared.metrics at scrape time)
        self.cache_misses = 0
        self._client_id = client_id
        self._credential_set = credential_set
        self._refused_until = float("-inf")  # no credential there: opaque tokens 401 until then
        self.credential_refused = False  # the last answer refused this server's credential

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        client: httpx2.AsyncClient | None = None,
        metadata: ProviderMetadata | None = None,
        revocations: RevocationFeed | None = None,
    ) -> IntrospectionValidator:
        return cls(
            metadata=metadata or ProviderMetadata.from_settings(settings),
            client_id=settings.introspection_client_id,
            client_secret=settings.introspection_client_secret,
            credential_set=settings.introspection_credential_set,
            resource=settings.mcp_resource_url,
            issuer=settings.issuer,
            extra_audiences=settings.accepted_audiences,
            extra_issuers=settings.accepted_issuers,
            revocations=revocations,
            auth_method=settings.introspection_auth_method,
            scope_claim=settings.token_scope_claim,
            subject_claim=settings.token_subject_claim,
            cache_ttl=settings.introspection_cache_ttl,
            negative_ttl=settings.introspection_negative_ttl,
            cache_size=settings.introspection_cache_size,
            timeout=settings.introspection_timeout,
            client=client,
        )

    @property
    def cache_len(self) -> int:
        return len(self._cache)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def validate(self, token: str) -> Principal:
        key = hashlib.sha256(token.encode()).digest()
        entry = self._cache.get(key)
        known: Principal | None = None  # who this token belonged to when last seen active
        if entry is not None:
            if entry.expires > self._clock():
                self.cache_hits += 1
                if isinstance(entry.outcome, Principal):
                    return entry.outcome
                raise TokenRejected(*entry.outcome)
            self._cache.pop(key)
            known = entry.outcome if isinstance(entry.outcome, Principal) else None

        self.cache_misses += 1
        pending = self._inflight.get(key)
        if pending is None:
            budget = current_lookup_budget()
            if budget is not None:
                wait = budget.spend()
                if wait:
                    raise LookupRefused(wait)
            pending = asyncio.ensure_future(self._introspect_and_cache(key, token, known))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._forget_inflight(key, done))
            if budget is not None:
                pending.add_done_callback(functools.partial(_settle, budget))
        # Shielded: one caller giving up (client disconnect) must not cancel the others' answer.
        return await asyncio.shield(pending)

    def _forget_inflight(self, key: bytes, done: asyncio.Future[Principal]) -> None:
        self._inflight.pop(key, None)
        if not done.cancelled():
            done.exception()  # marks it retrieved even when every waiter went away

    async def _introspect_and_cache(self, key: bytes, token: str, known: Principal | None) -> Principal:
        body = await self._call(token)
        now = self._clock()
        try:
            principal = self._principal(body, now)
        except TokenRejected as rejected:
            self._remember(key, (rejected.reason, rejected.description), now + self._negative_ttl)
            if self._revocations is not None and known is not None and _revoked_since(known, rejected, now):
                self._revocations.revoked(known.issuer, known.subject)
            raise
        lifetime = self._cache_ttl
        if principal.expires_at is not None:
            lifetime = min(lifetime, principal.expires_at - now)
        self._remember(key, principal, now + lifetime)
        return principal

    def _remember(self, key: bytes, outcome: Principal | tuple[FailureReason, str], expires: float) -> None:
        if expires <= self._clock():
            return
        self._cache.put(key, _Entry(outcome, expires))

    async def credential_accepted(self) -> bool | None:
        """Whether the introspection endpoint accepts this server's credential, asked once with a
        random token: True (it answered), False (it refused the credential), None (no endpoint
        is advertised, or it could not be reached)."""
        try:
            await self._call(secrets.token_urlsafe(32))
        except (TokenRejected, ValidatorUnavailable):
            return False if self.credential_refused else None
        return True

    async def _call(self, token: str) -> Mapping[str, Any]:
        if self._refused_until > self._clock():
            raise TokenRejected("unknown", NO_CREDENTIAL)
        client = self._http.get()
        self.calls += 1
        data = {"token": token, "token_type_hint": "access_token"}
        if self._post_credentials is not None:
            data.update(self._post_credentials)
        try:
            async with asyncio.timeout(self._timeout):
                endpoint = self._endpoint or await self._discover_endpoint(client)
                response = await client.post(
                    endpoint,
                    data=data,
                    auth=self._auth,
                    # The caller's request id, so the AS logs this call under the same id.
                    headers={"Accept": "application/json", **request_id_header()},
                )
        except (TimeoutError, httpx2.HTTPError) as exc:
            logger.warning("introspection endpoint unreachable: %s", type(exc).__name__)
            raise ValidatorUnavailable(retry_after=self._retry_after) from None
        self.credential_refused = response.status_code in (401, 403) or (
            response.status_code == 400 and _error_code(response) == "invalid_client"
        )
        if self.credential_refused:
            self._credential_refused(response.status_code)
        if response.status_code == 400 and _error_code(response) == "unsupported_token_type":
            # RFC 7009 section 2.2.1 error some servers (oidc-provider for its JWTs) use here:
            # "I cannot vouch for this token", which for us is the same as inactive.
            return {"active": False}
        if response.status_code != 200:
            logger.warning("introspection endpoint answered HTTP %d", response.status_code)
            raise ValidatorUnavailable(retry_after=self._retry_after_from(response))
        try:
            body = untrusted_json.parse(response.content, max_bytes=_MAX_RESPONSE_BYTES)
        except untrusted_json.UntrustedJsonError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            logger.warning("introspection endpoint answered something that is not RFC 7662 JSON")
            raise ValidatorUnavailable(retry_after=self._retry_after)
        return body

    async def _discover_endpoint(self, client: httpx2.AsyncClient) -> str:
        assert self._metadata is not None
        endpoint = await self._metadata.endpoint(client, "introspection_endpoint")
        if endpoint is None:
            logger.warning("%s advertises no introspection_endpoint: opaque tokens are refused", self._issuer)
            raise TokenRejected("unknown", "the authorization server offers no introspection")
        return endpoint

    def _credential_refused(self, status: int) -> None:
        """The endpoint refused INTROSPECTION_CLIENT_ID's credential: 401 without one, else 503."""
        client = self._client_id[:100]
        if self._credential_set:
            logger.error(
                "the introspection endpoint refuses the credential of INTROSPECTION_CLIENT_ID=%s (HTTP %d): "
                "opaque tokens get 503 until INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET match a "
                "client registered there that may introspect",
                client,
                status,
            )
            raise ValidatorUnavailable(retry_after=self._retry_after)
        self._refused_until = self._clock() + CREDENTIAL_RETRY_SECONDS
        logger.error(
            "this server has no introspection credential at %s (HTTP %d for INTROSPECTION_CLIENT_ID=%s with "
            "the development default secret, which only the bundled authorization server knows): opaque "
            "tokens are answered 401 (JWTs are still checked locally unless TOKEN_VALIDATION=introspection); "
            "to accept its opaque tokens, register the MCP server there as a client that may introspect and "
            "set INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET (docs/identity-providers.md)",
            self._issuer,
            status,
            client,
        )
        raise TokenRejected("unknown", NO_CREDENTIAL)

    def _retry_after_from(self, response: httpx2.Response) -> int:
        value = response.headers.get("retry-after", "")
        if value.isdigit():
            return max(1, min(int(value), _MAX_RETRY_AFTER))
        return self._retry_after

    def _principal(self, body: Mapping[str, Any], now: float) -> Principal:
        """Check an RFC 7662 answer against this resource server's own rules."""
        if body.get("active") is not True:
            raise TokenRejected("unknown", "token is not active")
        token_type = body.get("token_type")
        if isinstance(token_type, str) and token_type.lower() in _NOT_ACCESS_TOKEN_TYPES:
            raise TokenRejected("not_an_access_token")
        exp = _int(numeric_date(body.get("exp")))
        if exp is not None and exp <= now:
            raise TokenRejected("expired")
        nbf = _int(numeric_date(body.get("nbf")))
        if nbf is not None and nbf > now + 5:
            raise TokenRejected("expired", "token is not valid yet")
        issuer = body.get("iss")
        if issuer is not None and issuer not in self._issuers:
            raise TokenRejected("wrong_issuer")
        audience = audience_of(body.get("aud"))
        if not names_accepted_audience(audience, self._audiences):
            raise TokenRejected("wrong_audience")
        client_id = body.get("client_id")
        subject = body.get(self._subject_claim)
        if not isinstance(subject, str) or not subject:
            # Never guessed (from client_id, say): two users of one client would become one
            # principal, sharing one notebook. The JWT path refuses the same way.
            raise TokenRejected("not_an_access_token", "token has no subject")
        return Principal(
            subject=subject,
            client_id=client_id if isinstance(client_id, str) else "",
            scopes=frozenset(scope_values(body.get(self._scope_claim))),
            audience=audience,
            issuer=issuer if isinstance(issuer, str) else None,
            expires_at=exp,
            claims=dict(body),
            cnf_jkt=confirmation_jkt(body.get("cnf")),
        )


def _revoked_since(known: Principal, rejected: TokenRejected, now: float) -> bool:
    """Active when last asked and not expired, inactive now: the AS revoked it. The one way a
    revocation there reaches this server (shared/revocations.py)."""
    if rejected.reason != "unknown":
        return False
    return known.expires_at is None or known.expires_at > now


def _settle(budget: LookupBudget, done: asyncio.Future[Principal]) -> None:
    """Only a lookup that found the token unknown or inactive stays spent: a valid token, or an
    authorization server that could not answer, costs the caller nothing."""
    if done.cancelled() or not isinstance(done.exception(), TokenRejected):
        budget.refund()


def _error_code(response: httpx2.Response) -> str | None:
    try:
        body = untrusted_json.parse(response.content, max_bytes=_MAX_RESPONSE_BYTES)
    except untrusted_json.UntrustedJsonError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
