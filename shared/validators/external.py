"""External mode: which check each token gets (TOKEN_VALIDATION), and what is said about it at start.

- `auto` (the default): a token that is a JWT, three base64url segments whose first decodes to a
  JOSE header naming its `alg` (a compact JWS), is verified locally against the provider's keys
  when its metadata publishes a `jwks_uri` (`jwt.py`); every other token, and every token when
  the provider publishes no keys, is introspected (RFC 7662, `introspection.py`). A JWT that fails
  the local check is refused (401), never retried by introspection: a forgery does not get a
  second opinion. This is what any provider needs with no setting: an OpenID provider issuing
  JWTs (Auth0, Entra ID, Keycloak, oidc-provider) is checked locally although the MCP server has
  no introspection credential there, and the bundled authorization server's opaque tokens are
  introspected.
- `jwt`: JWTs only; any other token is refused (401) without a call (providers whose opaque
  tokens this server must never accept, or that offer no introspection at all).
- `introspection`: every token is introspected, JWTs included: a revocation at the provider is seen
  within INTROSPECTION_CACHE_TTL instead of at the JWT's `exp`, at the price of a call per token.

TOKEN_FORMAT is the bundled authorization server's *issuing* format and plays no part here.

Opaque tokens are refused with 401, not 503, when they cannot be checked at all: the provider
advertises no `introspection_endpoint`, or refuses this server's introspection credential
(INTROSPECTION_CLIENT_ID / INTROSPECTION_CLIENT_SECRET unknown there). `announce()`, run once in
the background at start, discovers the provider and logs which checks apply, warning about
either case before the first client meets it.
"""

from __future__ import annotations

import logging

import httpx2

from shared import tracing
from shared.revocations import RevocationFeed
from shared.settings import Settings, TokenValidation
from shared.validation import Principal, TokenRejected, ValidatorUnavailable
from shared.validators.discovery import ProviderMetadata
from shared.validators.introspection import IntrospectionValidator
from shared.validators.jwt import JwtValidator, _compact_jws_header

logger = logging.getLogger("startup")


def is_jwt(token: str) -> bool:
    """A compact JWS: what the local check can take (anything else is not a JWT to it)."""
    try:
        _compact_jws_header(token)
    except TokenRejected:
        return False
    return True


class TokenRouter:
    """A TokenValidator that sends each token to the local JWT check or to introspection."""

    def __init__(
        self,
        *,
        metadata: ProviderMetadata,
        jwt: JwtValidator | None,
        introspection: IntrospectionValidator | None,
        choice: TokenValidation = "auto",
        timeout: float = 3.0,
    ) -> None:
        if jwt is None and introspection is None:
            raise ValueError("TokenRouter needs a JWT validator, an introspection validator, or both")
        self._metadata = metadata
        self.jwt = jwt
        self.introspection = introspection
        self.choice = choice
        self._timeout = timeout
        self._peer = tracing.PeerClient(None, timeout=self._timeout)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, metadata: ProviderMetadata, revocations: RevocationFeed | None = None
    ) -> TokenRouter:
        choice = settings.token_validation
        jwt = None if choice == "introspection" else JwtValidator.from_settings(settings, metadata=metadata)
        introspection = None
        if choice != "jwt":
            introspection = IntrospectionValidator.from_settings(
                settings, metadata=metadata, revocations=revocations
            )
        return cls(
            metadata=metadata,
            jwt=jwt,
            introspection=introspection,
            choice=choice,
            timeout=settings.introspection_timeout,
        )

    async def validate(self, token: str) -> Principal:
        if self.introspection is None or (
            self.jwt is not None and is_jwt(token) and await self._keys_published()
        ):
            assert self.jwt is not None
            return await self.jwt.validate(token)
        return await self.introspection.validate(token)

    async def _keys_published(self) -> bool:
        """Whether the provider's metadata names a `jwks_uri` (the document is fetched once, shared
        with the validators, and kept; `ValidatorUnavailable` while there is none at all)."""
        return await self._metadata.endpoint(self._http(), "jwks_uri") is not None

    def _http(self) -> httpx2.AsyncClient:
        return self._peer.get()

    async def announce(self) -> None:
        """Log which checks apply to this provider's tokens (run once at start, in the background:
        the provider may be slow or down, and start-up does not wait for it)."""
        issuer = self._metadata.issuer
        try:
            jwks_uri = await self._metadata.endpoint(self._http(), "jwks_uri")
            endpoint = await self._metadata.endpoint(self._http(), "introspection_endpoint")
        except ValidatorUnavailable:
            logger.warning(
                "token validation (TOKEN_VALIDATION=%s): %s could not be discovered yet; every token "
                "gets 503 until it can (see /readyz)",
                self.choice,
                issuer,
            )
            return
        checks = []
        if self.jwt is not None and jwks_uri is not None:
            checks.append(f"JWTs locally with the keys at {jwks_uri}")
        elif self.jwt is not None:
            checks.append(f"no JWT checked locally ({issuer} publishes no jwks_uri)")
        if self.introspection is not None and endpoint is not None:
            others = "every token" if self.jwt is None or jwks_uri is None else "other tokens"
            checks.append(f"{others} by introspection at {endpoint}")
        logger.info("token validation (TOKEN_VALIDATION=%s): %s", self.choice, "; ".join(checks))
        if self.introspection is None:
            return
        if endpoint is None:
            logger.warning(
                "%s advertises no introspection_endpoint: opaque tokens are answered 401%s",
                issuer,
                "" if self.jwt is None or jwks_uri is None else "; its JWTs are checked locally",
            )
            return
        await self.introspection.credential_accepted()  # a refusal is logged as an error there

    async def aclose(self) -> None:
        for validator in (self.jwt, self.introspection):
            if validator is not None:
                await validator.aclose()
        await self._peer.aclose()
