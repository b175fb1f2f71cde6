"""Federated login: our authorization server signs its users in at an upstream OpenID provider.

With UPSTREAM_OIDC_ISSUER set, the login step of our own authorization flow becomes an OpenID
Connect authorization-code flow (PKCE S256, `nonce`) at that provider, run by authlib's Starlette
client. MCP clients still register with us and get their codes and tokens from us; the provider
only tells us who the person at the browser is. Per-client consent stays on our consent page
(a remembered consent at the provider for *our* client says nothing about the MCP client that
asked us: no confused deputy).

The upstream `state` (MCP security best practices, "OAuth state parameter validation"):

* 256 random bits, created only when our own flow is already under way: a validated pending
  authorization exists, and its browser session asks to sign in;
* stored server-side only (`auth:upstream:{digest(state)}`, never the value itself), with the
  `nonce` and PKCE verifier, the pending request it belongs to and that browser's binding;
* single use (taken atomically at the callback) and short-lived (UPSTREAM_STATE_TTL);
* at the callback it must match exactly and come from the same browser; a missing, unknown,
  replayed or foreign state is rejected before the code is even looked at.

authlib's `authorize_redirect` / `authorize_access_token` would keep the state in Starlette's
cookie session (SessionMiddleware: signed, client-side, replayable until it expires); the same
client's lower steps are used instead (`create_authorization_url`, `fetch_access_token`,
`parse_id_token`, `userinfo`) with the state kept in our Store as above.

The callback only signs the browser in. No code is issued to the MCP client until our consent
step (remembered or answered on our page) approves that client for that user, so a provider
that signs the user in silently cannot be used to skip it.

Identity: the provider's `sub` from a verified ID token (signature from its JWKS, `iss`, `aud`,
`exp`, `nonce`, and `at_hash` when present), namespaced by the provider's issuer
(`federated_subject`), so it can never equal a local user name; email and name come from the ID
token or the userinfo endpoint (whose `sub` must match) and are kept as the user's profile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc.errors import JoseError
from opentelemetry.trace import Tracer
from pydantic import BaseModel

from auth_server import crypto
from auth_server.pending import PENDING_TTL
from shared.health import ReadinessProbe
from shared.retry_after import UNAVAILABLE
from shared.settings import DEFAULT_JWT_ALGORITHMS, Settings
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import profile_key, upstream_state_key
from shared.tracing import TracingTransport, active_tracer

logger = logging.getLogger(__name__)

UPSTREAM_STATE_TTL = PENDING_TTL  # as long as the pending request itself may live
CALLBACK_PATH = "/login/callback"
UPSTREAM_TIMEOUT = 10.0
PROFILE_TTL = 90 * 24 * 3600
MAX_STATE_LENGTH = 100
_ID_TOKEN_LEEWAY = 60


def federated_subject(issuer: str, sub: str) -> str:
    """Our subject for an upstream user: `<issuer>#<sub>`.

    Local user names cannot contain "://" (see `users.py`), so a federated subject never equals
    a local one, and two providers' users never share one."""
    return f"{issuer}#{sub}"


def callback_url(settings: Settings) -> str:
    """The redirect URI registered at the upstream provider for our authorization server."""
    return settings.issuer.rstrip("/") + CALLBACK_PATH


class UpstreamStateRejected(Exception):
    """Missing, unknown, expired, replayed, or from another browser."""


class UpstreamLoginFailed(Exception):
    """The provider's answer did not prove who the user is (its error, a bad ID token, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UpstreamUnavailable(Exception):
    """The provider could not be reached or answered nonsense."""


class UpstreamState(BaseModel):
    """What the callback needs to finish one upstream sign-in, kept server-side."""

    request_id: str
    binding: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    issuer: str
    sub: str
    email: str | None
    name: str | None
    auth_time: int | None

    @property
    def subject(self) -> str:
        return federated_subject(self.issuer, self.sub)


class UpstreamProvider:
    """The upstream OpenID provider, as authlib's Starlette OAuth client plus our state store."""

    def __init__(
        self,
        store: Store,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scope: str,
        callback_url: str,
        clock: Callable[[], float] = time.monotonic,
        retry_after: int = UNAVAILABLE,
        tracer: Tracer | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.callback_url = callback_url
        self._store = store
        self.metadata_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self.problem: str | None = None  # why the last discovery found nothing usable (/readyz)
        self._checked: dict[str, Any] | None = None
        self._retry_at = float("-inf")
        self._lock = asyncio.Lock()
        self._clock = clock
        self._retry_after = retry_after  # by default the Retry-After every 503 asks for
        self._app: Any = OAuth().register(
            "upstream",
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=self.metadata_url,
            client_kwargs={
                "scope": scope,
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_basic" if client_secret else "none",
                "timeout": UPSTREAM_TIMEOUT,
                "follow_redirects": False,
            },
        )
        if tracer is not None:  # every call to the provider a CLIENT span carrying the trace context
            self._app.client_cls = _traced_client_class(tracer)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> UpstreamProvider:
        if not settings.upstream_oidc_issuer or not settings.upstream_oidc_client_id:
            raise ValueError("UpstreamProvider needs UPSTREAM_OIDC_ISSUER and UPSTREAM_OIDC_CLIENT_ID")
        return cls(
            store,
            issuer=settings.upstream_oidc_issuer,
            client_id=settings.upstream_oidc_client_id,
            client_secret=settings.upstream_oidc_client_secret,
            scope=settings.upstream_oidc_scope,
            callback_url=callback_url(settings),
            tracer=active_tracer(),
        )

    # --- metadata -------------------------------------------------------------------------------
    async def metadata(self) -> Mapping[str, Any]:
        """OpenID discovery, checked: the document must name the configured issuer exactly.

        A checked document is kept (as authlib keeps the one it loaded). After a failure the
        provider is not asked again for `retry_after` seconds: anyone can make us ask
        (/readyz, the start of a sign-in), and a broken provider must not get one request each."""
        if self._checked is not None:
            return self._checked
        async with self._lock:
            if self._checked is not None:
                return self._checked
            if self._clock() < self._retry_at:
                raise UpstreamUnavailable
            try:
                self._checked = await self._load_checked()
            except UpstreamUnavailable:
                self._retry_at = self._clock() + self._retry_after
                raise
            self.problem = None
            return self._checked

    def readiness_probe(self) -> ReadinessProbe:
        """For /readyz: None once the provider's metadata is usable, else why nobody can sign in."""

        async def probe() -> str | None:
            try:
                await self.metadata()
            except UpstreamUnavailable:
                return self.problem or "the upstream provider (UPSTREAM_OIDC_ISSUER) is unavailable"
            return None

        return probe

    async def _load_checked(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = await self._app.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            self._forget_metadata()
            logger.warning(
                "upstream metadata at %s unavailable (%s): nobody can sign in until the provider "
                "UPSTREAM_OIDC_ISSUER names answers",
                self.metadata_url,
                type(exc).__name__,
            )
            self.problem = "no OpenID metadata from the provider UPSTREAM_OIDC_ISSUER names (see the log)"
            raise UpstreamUnavailable from None
        if document.get("issuer") != self.issuer or not isinstance(document.get("jwks_uri"), str):
            self._forget_metadata()
            logger.error(
                "upstream metadata names issuer %r, not %r (UPSTREAM_OIDC_ISSUER), or has no jwks_uri: "
                "nobody can sign in; set UPSTREAM_OIDC_ISSUER to exactly the issuer the provider publishes",
                str(document.get("issuer"))[:200],
                self.issuer,
            )
            self.problem = (
                "the upstream provider's metadata names another issuer than UPSTREAM_OIDC_ISSUER "
                "(or no jwks_uri)"
            )
            raise UpstreamUnavailable
        # ID tokens are verified with the provider's public keys only: never `none`, never HMAC.
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        document["id_token_signing_alg_values_supported"] = [
            alg for alg in offered if alg in DEFAULT_JWT_ALGORITHMS
        ] or ["RS256"]
        return document

    def _forget_metadata(self) -> None:
        self._app.server_metadata.clear()

    # --- the two halves of the flow -----------------------------------------------------------------
    async def begin(self, request_id: str, binding: str) -> str:
        """A fresh state for this pending request and browser; returns the provider's authorize URL."""
        await self.metadata()
        state = crypto.new_credential()
        nonce = crypto.new_credential()
        verifier = secrets.token_urlsafe(48)  # 64 characters, RFC 7636 section 4.1
        try:
            created = await self._app.create_authorization_url(
                self.callback_url, state=state, nonce=nonce, code_verifier=verifier
            )
        except (httpx2.HTTPError, RuntimeError) as exc:
            logger.warning("cannot build the upstream authorization URL: %s", type(exc).__name__)
            raise UpstreamUnavailable from None
        record = UpstreamState(request_id=request_id, binding=binding, nonce=nonce, code_verifier=verifier)
        await records.write(self._store, upstream_state_key(state), record, ttl=UPSTREAM_STATE_TTL)
        url: str = created["url"]
        return url

    async def claim(self, state: str | None, binding: str) -> UpstreamState:
        """The state's record, taken (single use) if it exists and this browser created it.

        A state from another browser is rejected without being consumed, so whoever holds a
        leaked callback URL cannot spoil the real user's sign-in either."""
        if not state or len(state) > MAX_STATE_LENGTH:
            raise UpstreamStateRejected
        key = upstream_state_key(state)
        record = await records.read(self._store, key, UpstreamState)
        if record is None:
            raise UpstreamStateRejected
        if not crypto.constant_time_equals(record.binding, binding):
            raise UpstreamStateRejected
        if await self._store.take(key) is None:
            raise UpstreamStateRejected  # a concurrent callback with the same state won
        return record

    async def finish(self, record: UpstreamState, code: str | None, iss: str | None) -> UpstreamIdentity:
        """Redeem the code (with the PKCE verifier), verify the ID token, read the profile."""
        metadata = await self.metadata()
        if iss is not None and iss != self.issuer:
            raise UpstreamLoginFailed("iss in the response is not the provider (RFC 9207)")
        if iss is None and metadata.get("authorization_response_iss_parameter_supported") is True:
            raise UpstreamLoginFailed("the provider promised iss in the response and sent none")
        if not code:
            raise UpstreamLoginFailed("no code in the response")
        try:
            token = await self._app.fetch_access_token(
                redirect_uri=self.callback_url, code=code, code_verifier=record.code_verifier
            )
        except OAuthError as exc:
            raise UpstreamLoginFailed(f"token endpoint: {exc.error}") from None
        except (httpx2.HTTPError, ValueError) as exc:
            logger.warning("upstream token endpoint unavailable: %s", type(exc).__name__)
            raise UpstreamUnavailable from None
        if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
            raise UpstreamLoginFailed("no ID token (is openid among UPSTREAM_OIDC_SCOPE?)")
        claims = await self._id_token_claims(token, record.nonce)
        profile = dict(claims)
        if (not profile.get("email") or not profile.get("name")) and metadata.get("userinfo_endpoint"):
            profile = {**(await self._userinfo(token, claims["sub"])), **profile}
        auth_time = claims.get("auth_time")
        return UpstreamIdentity(
            issuer=self.issuer,
            sub=claims["sub"],
            email=_text(profile.get("email")),
            name=_text(profile.get("name")),
            auth_time=int(auth_time) if isinstance(auth_time, int | float) else None,
        )

    async def remember_profile(self, identity: UpstreamIdentity) -> None:
        """Keep the user's email and name at our server (for operators; never put in a token)."""
        profile = {
            "issuer": identity.issuer,
            "sub": identity.sub,
            "email": identity.email,
            "name": identity.name,
            "updated_at": int(time.time()),
        }
        await self._store.set(profile_key(identity.subject), json.dumps(profile), ttl=PROFILE_TTL)

    async def _id_token_claims(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        options = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.client_id},
            "sub": {"essential": True},
            "exp": {"essential": True},
            "iat": {"essential": True},
        }
        try:
            claims = await self._app.parse_id_token(
                token, nonce=nonce, claims_options=options, leeway=_ID_TOKEN_LEEWAY
            )
        except (JoseError, OAuthError, ValueError, KeyError) as exc:
            raise UpstreamLoginFailed(f"ID token rejected: {type(exc).__name__} {exc}") from None
        except (httpx2.HTTPError, RuntimeError) as exc:
            logger.warning("upstream JWKS unavailable: %s", type(exc).__name__)
            raise UpstreamUnavailable from None
        if claims is None or not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise UpstreamLoginFailed("ID token without a subject")
        return dict(claims)

    async def _userinfo(self, token: dict[str, Any], sub: str) -> dict[str, Any]:
        try:
            info = await self._app.userinfo(token=token)
        except (OAuthError, httpx2.HTTPError, ValueError) as exc:
            logger.info("upstream userinfo unavailable (%s); no profile", type(exc).__name__)
            return {}
        if info.get("sub") != sub:  # OpenID Connect Core section 5.3.4
            logger.warning("upstream userinfo names another subject; ignored")
            return {}
        return dict(info)


def _traced_client_class(tracer: Tracer) -> type[AsyncOAuth2Client]:
    """authlib's HTTP client for the provider, its requests traced like every call to a configured
    peer (shared/tracing.py, TracingTransport): discovery, the token endpoint, the JWKS and userinfo
    each get a CLIENT span, and the provider gets `traceparent`, `tracestate` and `baggage` (it is
    the operator's UPSTREAM_OIDC_ISSUER, not a host a client chose). authlib makes a client per
    call and closes it, transport included, so each gets a transport of its own."""

    class TracedOAuth2Client(AsyncOAuth2Client):  # type: ignore[misc]  # authlib has no annotations
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault(
                "transport", TracingTransport(httpx2.AsyncHTTPTransport(), tracer=tracer, trusted_peer=True)
            )
            super().__init__(*args, **kwargs)

    return TracedOAuth2Client


def _text(value: Any) -> str | None:
    return value[:320] if isinstance(value, str) and value else None
