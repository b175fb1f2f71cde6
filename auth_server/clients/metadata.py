"""Client metadata rules shared by every way a client becomes known.

Dynamic registration (RFC 7591), client ID metadata documents and pre-registered clients from
configuration all pass their metadata through `parse_client_metadata`, so a client is held to the
same rules however it arrived. Errors carry the RFC 7591 section 3.2.2 codes:
`invalid_redirect_uri` for a bad redirect URI, `invalid_client_metadata` for anything else.

Choices where the specs leave room (documented in docs/oauth.md):
* `application_type` omitted: `native` when every redirect URI is loopback (or an allowed
  private-use scheme), otherwise `web` (OpenID's default), so older MCP clients that omit it
  still register loopback callbacks;
* an explicit `web` client may not use loopback redirect URIs (OpenID Registration section 2),
  nor private-use schemes: those (NATIVE_REDIRECT_SCHEMES, RFC 8252 section 7.1) are for native
  apps only;
* only `response_types: ["code"]` and the grants this server implements are accepted; the
  implicit and password grants are refused, never silently dropped;
* `client_credentials` only from configuration (AUTH_CLIENTS): a registered or CIMD client asking
  for it is refused with `invalid_client_metadata`;
* `private_key_jwt` (with exactly one of `jwks` and `jwks_uri`, `key_sets.py`) and the
  enterprise assertion grant (jwt-bearer, SEP-990) only from configuration and client ID metadata
  documents: a client registering itself gets a secret, or is public;
* `dpop_bound_access_tokens` (RFC 9449 section 5.2), from any source: true makes the token
  endpoint refuse this client's requests without a DPoP proof.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from auth_server.clients.key_sets import UnusableKeySet, public_jwks
from auth_server.errors import OAuthError, RegistrationErrorCode, error_description
from auth_server.models import AuthMethod, Client, ClientSource
from auth_server.redirect_uris import (
    LOOPBACK_REDIRECT_HOSTS,
    UnacceptableRedirectUri,
    check_registrable,
    is_loopback_redirect,
    is_private_use_redirect,
    split_host_port,
)
from shared.oauth import GRANT_TYPES, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT
from shared.scopes import CATALOGUE, parse

# Token exchange is the MCP server's delegation credential's alone, which the registry builds
# (TOKEN_EXCHANGE_CLIENT_ID): no client metadata can claim it.
REGISTRABLE_GRANT_TYPES = tuple(grant for grant in GRANT_TYPES if grant != TOKEN_EXCHANGE_GRANT)
SUPPORTED_AUTH_METHODS: tuple[str, ...] = get_args(AuthMethod)
MAX_REDIRECT_URIS = 20
MAX_NAME_LENGTH = 200
# Unicode categories a displayed name may not contain: controls, format characters (bidi
# overrides, zero-width joiners and spaces), surrogates, private use, unassigned, line and
# paragraph separators.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MAX_URL_LENGTH = 2000

ApplicationType = Literal["native", "web"]


class ClientMetadataRejected(OAuthError):
    """400 `invalid_redirect_uri` or `invalid_client_metadata` (RFC 7591 section 3.2.2)."""

    def __init__(self, error: RegistrationErrorCode, description: str):
        super().__init__(error, error_description(description))


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """The effective metadata of a client after validation and defaults."""

    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod
    application_type: ApplicationType
    scope: str | None
    client_name: str | None
    client_uri: str | None
    logo_uri: str | None
    jwks: dict[str, Any] | None = None  # private_key_jwt only
    jwks_uri: str | None = None
    dpop_bound_access_tokens: bool = False

    @property
    def is_public(self) -> bool:
        """A client without a secret (`none`): PKCE and refresh rotation are what protect it."""
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - a method name, not a secret

    def to_client(
        self,
        client_id: str,
        source: ClientSource,
        *,
        client_id_issued_at: int = 0,
        client_secret_digest: str | None = None,
    ) -> Client:
        """The Client record these metadata describe, plus what only its registrar knows."""
        return Client(
            client_id=client_id,
            client_id_issued_at=client_id_issued_at,
            client_name=self.client_name,
            client_uri=self.client_uri,
            logo_uri=self.logo_uri,
            redirect_uris=self.redirect_uris,
            grant_types=self.grant_types,
            response_types=self.response_types,
            token_endpoint_auth_method=self.token_endpoint_auth_method,
            client_secret_digest=client_secret_digest,
            jwks=self.jwks,
            jwks_uri=self.jwks_uri,
            scope=self.scope,
            application_type=self.application_type,
            source=source,
            dpop_bound_access_tokens=self.dpop_bound_access_tokens,
        )


def parse_client_metadata(
    raw: Mapping[str, Any],
    *,
    default_auth_method: AuthMethod,
    native_schemes: Collection[str] = (),
    machine_client_allowed: bool = False,
    key_auth_allowed: bool = False,
) -> ClientMetadata:
    """Validate client metadata and fill in defaults; raise ClientMetadataRejected on bad input.

    Members this server does not understand are ignored, as RFC 7591 section 2 requires.
    `native_schemes` are the private-use redirect URI schemes allowed for native clients
    (settings.native_redirect_schemes). `machine_client_allowed` is True for configuration only:
    the client_credentials grant (a token with no user behind it) is the operator's decision,
    never one a client registering itself or publishing a metadata document makes.
    `key_auth_allowed` is True for configuration and metadata documents: `private_key_jwt` and
    the enterprise assertion grant (jwt-bearer), which needs a client that authenticates.
    """
    grant_types = _string_list(raw, "grant_types", default=["authorization_code"])
    for grant in grant_types:
        if grant not in REGISTRABLE_GRANT_TYPES:
            raise _metadata(
                f"grant type {grant!r} is not supported; use {', '.join(REGISTRABLE_GRANT_TYPES)}"
            )
    if "client_credentials" in grant_types and not machine_client_allowed:
        raise _metadata(
            "the client_credentials grant is for machine clients the operator configures, not for "
            "registered clients; use authorization_code"
        )
    if JWT_BEARER_GRANT in grant_types and not key_auth_allowed:
        raise _metadata(
            "the jwt-bearer grant (enterprise-managed authorization) is for configured clients and "
            "client ID metadata documents"
        )
    if not grant_types:
        raise _metadata("grant_types must not be empty")
    uses_code = "authorization_code" in grant_types

    response_types = _string_list(raw, "response_types", default=["code"] if uses_code else [])
    if any(value != "code" for value in response_types):
        raise _metadata("only the response type code is supported (the implicit flow is not)")
    if ("code" in response_types) != uses_code:
        raise _metadata("response type code and grant type authorization_code go together")

    auth_method = raw.get("token_endpoint_auth_method", default_auth_method)
    if auth_method not in SUPPORTED_AUTH_METHODS:
        raise _metadata(f"token_endpoint_auth_method must be one of {', '.join(SUPPORTED_AUTH_METHODS)}")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise _metadata("the client_credentials grant needs a confidential client (a secret)")
    if auth_method == "none" and JWT_BEARER_GRANT in grant_types:
        raise _metadata(
            "the jwt-bearer grant needs a client that authenticates (a secret or private_key_jwt)"
        )
    jwks, jwks_uri = None, None
    if auth_method == "private_key_jwt":
        if not key_auth_allowed:
            raise _metadata(
                "private_key_jwt is for configured clients and client ID metadata documents; "
                "register with client_secret_basic, client_secret_post or none"
            )
        jwks, jwks_uri = _client_keys(raw)

    redirect_uris = _redirect_uris(raw, required=uses_code, native_schemes=native_schemes)
    application_type = _application_type(raw, redirect_uris, native_schemes)

    return ClientMetadata(
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        response_types=response_types,
        token_endpoint_auth_method=cast(AuthMethod, auth_method),
        application_type=application_type,
        scope=_scope(raw),
        client_name=_display_name(raw, "client_name"),
        client_uri=_optional_web_url(raw, "client_uri"),
        logo_uri=_optional_web_url(raw, "logo_uri"),
        jwks=jwks,
        jwks_uri=jwks_uri,
        dpop_bound_access_tokens=_flag(raw, "dpop_bound_access_tokens"),
    )


def _client_keys(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """`jwks` or `jwks_uri` (exactly one) of a private_key_jwt client."""
    jwks, jwks_uri = raw.get("jwks"), raw.get("jwks_uri")
    if (jwks is None) == (jwks_uri is None):
        raise _metadata("private_key_jwt needs exactly one of jwks and jwks_uri (the client's public keys)")
    if jwks is not None:
        try:
            return public_jwks(jwks), None
        except UnusableKeySet as exc:
            raise _metadata(f"jwks: {exc}") from None
    if not isinstance(jwks_uri, str) or len(jwks_uri) > MAX_URL_LENGTH or not _is_web_url(jwks_uri):
        raise _metadata("jwks_uri must be an https URL")
    if "#" in jwks_uri or any(ch <= " " or ch in "\x7f\\" for ch in jwks_uri):
        raise _metadata("jwks_uri must not contain a fragment, spaces or control characters")
    return None, jwks_uri


def _redirect_uris(
    raw: Mapping[str, Any], *, required: bool, native_schemes: Collection[str]
) -> tuple[str, ...]:
    value = raw.get("redirect_uris")
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(uri, str) for uri in value):
        raise ClientMetadataRejected("invalid_redirect_uri", "redirect_uris must be a list of strings")
    if required and not value:
        raise ClientMetadataRejected(
            "invalid_redirect_uri", "the authorization_code grant needs at least one redirect URI"
        )
    if len(value) > MAX_REDIRECT_URIS:
        raise ClientMetadataRejected("invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect URIs")
    for uri in value:
        try:
            check_registrable(uri, native_schemes)
        except UnacceptableRedirectUri as exc:
            raise ClientMetadataRejected("invalid_redirect_uri", f"{exc}: {uri[:200]!r}") from None
    return tuple(dict.fromkeys(value))


def _application_type(
    raw: Mapping[str, Any], redirect_uris: tuple[str, ...], native_schemes: Collection[str]
) -> ApplicationType:
    value = raw.get("application_type")
    private_use = [uri for uri in redirect_uris if is_private_use_redirect(uri, native_schemes)]
    if value is None:
        native_only = bool(redirect_uris) and all(
            is_loopback_redirect(uri) or uri in private_use for uri in redirect_uris
        )
        value = "native" if native_only else "web"
    elif value not in ("native", "web"):
        raise _metadata("application_type must be native or web")
    elif value == "web" and any(is_loopback_redirect(uri) for uri in redirect_uris):
        raise _metadata("a web client may not use loopback redirect URIs; register it as native")
    if value == "web" and private_use:
        raise ClientMetadataRejected(
            "invalid_redirect_uri",
            f"a private-use scheme redirect URI is for native apps only: {private_use[0][:200]!r}",
        )
    return cast(ApplicationType, value)


def _scope(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("scope")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _metadata("scope must be a space-separated string")
    scopes = parse(value)
    unknown = CATALOGUE.unknown(scopes)
    if unknown:
        raise _metadata(f"unknown scope {unknown[0][:100]!r}; supported: {' '.join(CATALOGUE.names)}")
    return " ".join(scopes) or None


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise _metadata(f"{name} must be true or false")
    return value


def _string_list(raw: Mapping[str, Any], name: str, *, default: list[str]) -> tuple[str, ...]:
    value = raw.get(name, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _metadata(f"{name} must be a list of strings")
    return tuple(dict.fromkeys(value))


def _optional_string(raw: Mapping[str, Any], name: str, max_length: int) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise _metadata(f"{name} must be a non-empty string of at most {max_length} characters")
    return value


def _display_name(raw: Mapping[str, Any], name: str) -> str | None:
    """A name pages show people: no control, format or separator characters (NUL, bidi overrides
    such as U+202E, zero-width spaces, line separators), which make one text look like another."""
    value = _optional_string(raw, name, MAX_NAME_LENGTH)
    if value is not None and any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in value):
        raise _metadata(f"{name} must not contain control, invisible or direction-changing characters")
    return value


def _optional_web_url(raw: Mapping[str, Any], name: str) -> str | None:
    """client_uri / logo_uri: shown to people, so only https (or loopback http) web pages."""
    value = _optional_string(raw, name, MAX_URL_LENGTH)
    if value is None:
        return None
    if not _is_web_url(value):
        raise _metadata(f"{name} must be an https URL")
    return value


def _is_web_url(value: str) -> bool:
    """An https URL (or loopback http) with a host and no userinfo."""
    parts = urlsplit(value)
    host, _ = split_host_port(parts.netloc)
    is_loopback_http = parts.scheme == "http" and host.lower() in LOOPBACK_REDIRECT_HOSTS
    return (parts.scheme == "https" or is_loopback_http) and bool(parts.netloc) and "@" not in parts.netloc


def _metadata(description: str) -> ClientMetadataRejected:
    return ClientMetadataRejected("invalid_client_metadata", description)
