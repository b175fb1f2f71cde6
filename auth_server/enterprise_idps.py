"""Enterprise identity providers whose ID-JAGs this authorization server trusts (SEP-990).

An Identity Assertion JWT Authorization Grant (draft-ietf-oauth-identity-assertion-authz-grant,
the MCP extension `io.modelcontextprotocol/enterprise-managed-authorization`) is a JWT an
enterprise identity provider signs after its own policy let a user's client act at our server.
The operator names the providers (ENTERPRISE_IDP_ISSUERS); anything else is refused before a
single byte is fetched. Their signing keys come from discovery, as for any trusted issuer
(`shared.validators.discovery`: RFC 8414, else OpenID, the document's `issuer` compared byte for
byte; then its `jwks_uri`), through one `JwtValidator` per provider: algorithm allow-list
(asymmetric only), keys cached and refetched on an unknown `kid` at most every 30 s, `iss`,
`exp`/`nbf` with LEEWAY, a `sub`.

On top, what makes a JWT an ID-JAG for us (the draft's section 4.4.1, the MCP profile's 5.1 and
7.4 to 7.6); `verify` checks everything that does not depend on the request:

* `typ` is `oauth-id-jag+jwt` (an ID token or access token of the same provider is not a grant);
* `aud` is exactly our issuer, as its only audience;
* `iat` is present and not in the future, `exp` at most MAX_LIFETIME after it and after now;
* `jti` present (the grant makes it single use, per provider, in the Store);
* `client_id` and `sub` present, of bounded length; `resource` (optional) names URIs, `scope`
  (optional) scopes from our catalogue: an unknown scope is `invalid_grant` (profile 7.6.2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from auth_server.clients.assertions import AssertionRejected, jws_parts
from shared.scopes import CATALOGUE
from shared.settings import Settings
from shared.validation import TokenRejected
from shared.validators.claims import audience_of, numeric_date, scope_values
from shared.validators.discovery import ProviderMetadata
from shared.validators.jwt import JwtValidator

logger = logging.getLogger(__name__)

ID_JAG_TYPE = "oauth-id-jag+jwt"
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"
MAX_ID_JAG_BYTES = 16_384
MAX_LIFETIME = 600
LEEWAY = 30
MAX_CLAIM_LENGTH = 256
_REASONS = {
    "bad_signature": "the ID-JAG's signature or signing key is not acceptable",
    "wrong_issuer": "the ID-JAG's issuer is not trusted",
    "wrong_audience": "the ID-JAG's aud is not this authorization server",
    "expired": "the ID-JAG has expired or is not valid yet",
    "not_an_access_token": "not an ID-JAG (typ must be oauth-id-jag+jwt, with exp and sub)",
    "malformed": "not a JWT",
}


class IdJagRejected(Exception):
    """The assertion is not an acceptable ID-JAG: `invalid_grant`, with this message."""


@dataclass(frozen=True, slots=True)
class IdJag:
    """A verified ID-JAG's claims that matter here."""

    issuer: str
    subject: str
    client_id: str
    jti: str
    expires_at: float
    resources: tuple[str, ...]  # empty: the assertion names none
    scopes: tuple[str, ...] | None  # None: the assertion names none


class EnterpriseIdps:
    """The trusted providers (one key-caching validator each) and the ID-JAG rules above."""

    def __init__(
        self,
        issuers: list[str],
        *,
        audience: str,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._audience = audience
        self._clock = clock
        self._validators = {
            issuer: JwtValidator(
                issuer=issuer,
                resource=audience,
                metadata=ProviderMetadata(issuer=issuer, issuer_setting="ENTERPRISE_IDP_ISSUERS"),
                token_types=(ID_JAG_TYPE,),
                leeway=LEEWAY,
                timeout=timeout,
                clock=clock,
            )
            for issuer in issuers
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> EnterpriseIdps | None:
        """None when no provider is trusted (the jwt-bearer grant is then off)."""
        if not settings.enterprise_idp_issuers:
            return None
        return cls(
            settings.enterprise_idp_issuers, audience=settings.issuer, timeout=settings.introspection_timeout
        )

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._validators)

    async def verify(self, assertion: str) -> IdJag:
        """The ID-JAG's claims, or IdJagRejected; ValidatorUnavailable when the provider's keys
        cannot be had right now."""
        try:
            _, unverified = jws_parts(assertion, max_bytes=MAX_ID_JAG_BYTES)
        except AssertionRejected:
            raise IdJagRejected("the assertion is not a JWT") from None
        issuer = unverified.get("iss")
        validator = self._validators.get(issuer) if isinstance(issuer, str) else None
        if validator is None or not isinstance(issuer, str):
            raise IdJagRejected("the ID-JAG's issuer is not a trusted enterprise identity provider")
        try:
            principal = await validator.validate(assertion)
        except TokenRejected as rejected:
            raise IdJagRejected(_REASONS.get(rejected.reason, "the ID-JAG is not acceptable")) from None
        return self._check(issuer, principal.claims)

    def _check(self, issuer: str, claims: Mapping[str, Any]) -> IdJag:
        now = self._clock()
        audience = audience_of(claims.get("aud"))
        if audience != (self._audience,):
            raise IdJagRejected("the ID-JAG's aud must be this authorization server's issuer, alone")
        iat = numeric_date(claims.get("iat"))
        exp = numeric_date(claims.get("exp"))
        if iat is None or exp is None:
            raise IdJagRejected("the ID-JAG needs iat and exp")
        if iat > now + LEEWAY:
            raise IdJagRejected("the ID-JAG's iat is in the future")
        if exp - iat > MAX_LIFETIME or exp > now + MAX_LIFETIME + LEEWAY:
            raise IdJagRejected(f"the ID-JAG is valid for too long (more than {MAX_LIFETIME} s)")
        values = {name: claims.get(name) for name in ("sub", "client_id", "jti")}
        for name, value in values.items():
            if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_LENGTH:
                raise IdJagRejected(f"the ID-JAG needs a {name} (a string of at most {MAX_CLAIM_LENGTH})")
        resource = claims.get("resource")
        resources = audience_of(resource)
        if resource is not None and (not resources or len(resources) != _length(resource)):
            raise IdJagRejected("the ID-JAG's resource must be a URI or a list of URIs")
        scopes: tuple[str, ...] | None = None
        if claims.get("scope") is not None:
            scopes = scope_values(claims.get("scope"))
            unknown = CATALOGUE.unknown(scopes)
            if unknown:
                raise IdJagRejected(f"the ID-JAG names a scope this server does not know: {unknown[0][:60]}")
        return IdJag(
            issuer=issuer,
            subject=str(values["sub"]),
            client_id=str(values["client_id"]),
            jti=str(values["jti"]),
            expires_at=exp,
            resources=resources,
            scopes=scopes,
        )


def _length(value: Any) -> int:
    return len(value) if isinstance(value, list) else 1
