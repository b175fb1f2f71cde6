"""The records the authorization server keeps, shared by its front and back channels.

Plain pydantic models, serialised as JSON into the `Store`. Credentials never appear in them:
codes, tokens and secrets are stored as `crypto.digest` values only.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from shared.oauth import JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
ClientSource = Literal["preregistered", "dynamic", "metadata_document"]

# The subject of a machine client's own tokens is `client:<client_id>`. No user's subject can take
# that form: local user names may not start with it (users.py), federated subjects start with the
# upstream issuer's URL (upstream.py).
MACHINE_SUBJECT_PREFIX = "client:"


def looks_like_metadata_url(client_id: str) -> bool:
    """Client IDs that are URLs are metadata document URLs; generated client_ids never are."""
    return client_id.startswith(("https://", "http://"))


class Client(BaseModel):
    """A registered OAuth client, whichever way it became known."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_name: str | None = None
    client_uri: str | None = None
    logo_uri: str | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    response_types: tuple[str, ...] = ("code",)
    token_endpoint_auth_method: AuthMethod = "none"  # noqa: S105 - a method name, not a secret
    client_secret_digest: str | None = None
    # private_key_jwt (RFC 7523): its public keys, or where it publishes them (clients/keys.py)
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    scope: str | None = None  # space-separated scopes it may ask for; None: any supported scope
    application_type: Literal["native", "web"] = "native"
    client_id_issued_at: int = 0
    source: ClientSource = "dynamic"
    may_introspect: bool = False  # a resource server's client: allowed at /introspect
    # RFC 9449 section 5.2: the client always uses DPoP, so /token refuses its requests without a proof.
    dpop_bound_access_tokens: bool = False

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - a method name

    @property
    def uses_secret(self) -> bool:
        """Authenticates with a shared secret (client_secret_basic or _post)."""
        return self.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post")

    @property
    def machine_subject(self) -> str:
        """The subject of the tokens this client gets for itself (client_credentials)."""
        return MACHINE_SUBJECT_PREFIX + self.client_id

    def may_use_grant(self, grant_type: str) -> bool:
        """Whether /token serves this client `grant_type` (else `unauthorized_client`).

        A registered grant is not enough on its own: a resource server's credential
        (`may_introspect`) only introspects and never obtains a token, and client_credentials,
        a token with no user behind it, is for machine clients the operator configured
        (AUTH_CLIENTS, with an explicit scope), never for one that registered itself or
        publishes a metadata document. An enterprise assertion (jwt-bearer) is for a client that
        authenticates, configured or publishing a metadata document; token exchange only for a
        configured resource server's delegation credential.
        """
        if self.may_introspect or grant_type not in self.grant_types:
            return False
        if grant_type == "client_credentials":
            return self.source == "preregistered" and not self.is_public and bool(self.scope)
        if grant_type == JWT_BEARER_GRANT:
            return self.source in ("preregistered", "metadata_document") and not self.is_public
        if grant_type == TOKEN_EXCHANGE_GRANT:
            return self.source == "preregistered" and not self.is_public
        return True

    @property
    def name_is_verified(self) -> bool:
        """Only a configured client's name is vouched for (by the operator); a registered or CIMD
        client names itself, so pages mark its name as unverified."""
        return self.source == "preregistered"


class ClientRegistry(Protocol):
    """Finds clients by client_id: pre-registered, dynamically registered, or a CIMD URL."""

    async def get(self, client_id: str) -> Client | None: ...


class AuthorizationCodeRecord(BaseModel):
    """What an authorization code stands for; stored under `auth:code:{digest}` until redeemed."""

    client_id: str
    redirect_uri: str
    code_challenge: str  # S256 only
    scopes: tuple[str, ...]
    resource: str  # RFC 8707 audience; the default MCP resource when the client sent none
    subject: str
    auth_time: int
    issued_at: int
    grant_id: str  # every token later minted from this code joins this grant
    # False when /authorize got no redirect_uri (the client has exactly one registered): then the
    # token request may omit it too (OAuth 2.1 section 4.1.3); when True it must send it, identical.
    redirect_uri_in_request: bool = True
    # RFC 9449 section 10: the thumbprint of the DPoP key the code is bound to (`dpop_jkt` at
    # /authorize); the token request must prove possession of it.
    dpop_jkt: str | None = None
