"""The one configuration class for every process of the project.

Values come from the environment, then `.env` in the working directory, then the defaults (the
first that names a setting wins), for every entry point. Every field has a development default,
so `make dev-internal` needs no configuration at all; outside development the servers refuse to
start while one of those defaults is in effect (`shared/startup.py`, docs/security.md).
`.env.example` lists every setting with a one-line meaning.

A bad value stops start-up with one line per bad setting, naming it and the form it expects
(`load_settings`), never a traceback. List settings take a comma-separated value or a JSON list;
settings holding objects (AUTH_USERS, AUTH_CLIENTS, API_KEYS) take JSON. A variable that looks
like a setting but is none (REDIS_URI, AUTH_MOD) is reported by `unknown_setting_warnings`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from shared.storage.redis_url import parse_redis_url

AuthMode = Literal["internal", "external", "none"]
TokenFormat = Literal["opaque", "jwt"]
TokenValidation = Literal["auto", "jwt", "introspection"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["auto", "json", "text"]
SessionMode = Literal["stateful", "stateless"]
JsonResponses = Literal["auto", "never"]
IntrospectionAuthMethod = Literal["client_secret_basic", "client_secret_post"]

# Asymmetric only: a resource server holds no shared secret, and HMAC would let anyone sign with
# the provider's public key.
DEFAULT_JWT_ALGORITHMS = (
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)

DEFAULT_API_KEY_HEADER = "X-API-Key"

# A retried refresh may re-issue tokens into its grant only while that grant's revocation tombstone
# (auth_server/grants/grant.py, 300 s) would still stop it: keep the window far below it.
MAX_REFRESH_GRACE_PERIOD = 60
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# DPoP proofs (RFC 9449): asymmetric JWS algorithms only (section 11.6); ES256 first, the one
# clients use by default. Ed25519 is the fully-specified name (RFC 9864) of EdDSA with that curve.
DEFAULT_DPOP_ALGORITHMS = (
    *("ES256", "ES384", "ES512", "PS256", "PS384", "PS512"),
    *("RS256", "RS384", "RS512", "EdDSA", "Ed25519"),
)
SUPPORTED_DPOP_ALGORITHMS = DEFAULT_DPOP_ALGORITHMS
DpopNonceMode = Literal["off", "required"]


# Schemes NATIVE_REDIRECT_SCHEMES may never name: web and script schemes, and ones browsers or
# operating systems handle themselves (RFC 8252 section 7.1 is about an app's own private scheme).
NEVER_NATIVE_SCHEMES = frozenset(
    {"http", "https", "javascript", "vbscript", "data", "file", "blob", "about", "filesystem", "ftp"}
    | {"ws", "wss", "mailto", "tel", "sms", "intent", "content", "view-source", "jar"}
)
_URI_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
# Headers an API_KEY_HEADER may not be: credentials and cookies, what HTTP and the MCP transport
# already mean by their own headers, and the request id and proxy headers.
RESERVED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "host", "origin", "accept", "content-type"}
    | {"content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "expect"}
    | {"last-event-id", "x-request-id", "forwarded", "x-forwarded-for", "x-forwarded-proto", "dpop"}
)


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that can only reach this machine."""
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def is_loopback_http_url(url: str) -> bool:
    """True for http://<loopback>[:port][/path]: a URL only this machine can use."""
    parts = urlsplit(url)
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


_LIST_FORM = 'a comma-separated list (a,b) or a JSON list (["a", "b"])'


def _comma_or_json_list(value: Any) -> Any:
    """`a, b` or `["a", "b"]` -> ["a", "b"] (a JSON list when an item contains a comma)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith("["):
        return [item.strip() for item in text.split(",") if item.strip()]
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ValueError(f"expected {_LIST_FORM}; that JSON list does not parse") from None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise ValueError(f"expected {_LIST_FORM} of strings")
    return parsed


# The type of every setting whose value is a list of strings: `a,b` or `["a", "b"]`. NoDecode:
# the sources hand over the text, so a plain value never reaches a JSON parser that would fail
# with a traceback.
StringList = Annotated[list[str], NoDecode, BeforeValidator(_comma_or_json_list)]
# Settings whose value is a JSON document, with the form a bad value's message shows.
JSON_FORMS = {
    "auth_users": '{"alice": "<hash from scripts/hash-password.py>"}',
    "auth_clients": '[{"client_id": "...", "client_secret": "...", "redirect_uris": ["https://..."]}]',
    "api_keys": '[{"sha256": "<hex digest of the key>", "subject": "...", "scopes": ["..."]}]',
}


class Settings(BaseSettings):
    """Everything configurable, read once at start-up and passed down explicitly (no globals)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    # --- processes and addresses -------------------------------------------------------------
    auth_mode: AuthMode = Field("internal", description="internal, external or none (see docs/auth-modes.md)")
    host: str = Field("127.0.0.1", description="Interface both servers bind to")
    mcp_port: int = Field(3232, ge=0, le=65535, description="Port of the MCP server")
    auth_port: int = Field(3001, ge=0, le=65535, description="Port of the standalone auth server")
    mcp_public_url: str | None = Field(
        None, description="Public base URL of the MCP server (default http://HOST:MCP_PORT)"
    )
    auth_issuer_url: str | None = Field(
        None,
        description="Issuer of the authorization server (default: MCP base URL when internal; "
        "AUTH_SERVER_URL, else http://HOST:AUTH_PORT, when external); set it only when it differs",
    )
    auth_server_url: str | None = Field(
        None,
        description="External mode: the issuer URL of the authorization server the MCP server trusts "
        "(the bundled one or any OAuth/OpenID provider, see docs/identity-providers.md); with "
        "AUTH_ISSUER_URL set, only the address it is reached at",
    )
    web_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes each server runs on its port (uvicorn's variable; also --workers); "
        "more than one needs REDIS_URL, and for the MCP server MCP_SESSION_MODE=stateless and "
        "LEGACY_SSE=false (docs/operations.md)",
    )
    log_level: LogLevel = Field("INFO", description="Log level of every process")
    log_format: LogFormat = Field(
        "auto",
        description="Log lines of every process: json (one object per line), text, or auto (text "
        "when standard error is a terminal, else json)",
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics")
    metrics_token: str | None = Field(
        None,
        description="Bearer token /metrics requires (>= 32 characters outside development); unset: "
        "/metrics answers loopback clients only (see docs/operations.md)",
    )

    # --- transport security ------------------------------------------------------------------
    allowed_hosts: StringList = Field(
        default_factory=list,
        description="Extra Host header values accepted (DNS-rebinding defence); loopback always allowed "
        "when bound to loopback",
    )
    allowed_origins: StringList = Field(
        default_factory=list,
        description="Browser origins allowed to call /mcp (CORS and Origin check); loopback origins "
        "always allowed when bound to loopback",
    )
    forwarded_allow_ips: StringList = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the reverse proxies whose X-Forwarded-For / "
        "Forwarded headers are believed for the client address (uvicorn's name); empty: trust no "
        "one; * trusts everyone, which lets any client pick its address (docs/operations.md)",
    )
    legacy_sse: bool = Field(True, description="Serve the deprecated HTTP+SSE transport at /sse")
    showcase: bool = Field(
        True,
        description="Serve the protocol showcase (mcp_server/showcase/: echo, add, the test_* tools, "
        "prompts, resources and completions the conformance suite calls); a fork sets false "
        "(docs/extending.md)",
    )
    mcp_session_mode: SessionMode = Field(
        "stateful",
        description="2025-11-25 sessions: stateful (in process memory; several instances need sticky "
        "routing on Mcp-Session-Id) or stateless (any instance serves any request; no server-to-client "
        "requests)",
    )
    mcp_json_responses: JsonResponses = Field(
        "auto",
        description="2025-11-25 requests: auto answers those that cannot stream anything (ping, lists, "
        "tools without a Context) with one JSON body, the rest with an SSE stream; never answers "
        "every one with an SSE stream, as the SDK does (docs/performance.md)",
    )
    mcp_max_sessions: int = Field(
        10_000,
        gt=0,
        description="Sessions (2025-11-25 and legacy SSE) one MCP server process keeps open at most "
        "(then 503)",
    )
    mcp_max_sessions_per_principal: int = Field(
        100,
        gt=0,
        description="Sessions (2025-11-25 and legacy SSE together) one user (token issuer and subject, "
        "any client) may hold open at once (then 429)",
    )
    request_state_keys: StringList = Field(
        default_factory=list,
        description="Secrets sealing 2026-07-28 requestState (comma-separated, each >= 32 characters, "
        "the first seals); empty: a per-process key, so set the same list on every instance",
    )

    # --- tasks (io.modelcontextprotocol/tasks, docs/tasks.md) ----------------------------------
    task_max_ttl: int = Field(
        3600,
        gt=0,
        le=7 * 24 * 3600,
        description="Longest a task and its result are kept, seconds, counted from the tools/call "
        "that created it (a tool may ask for less)",
    )
    task_lease_seconds: float = Field(
        30.0,
        ge=1.0,
        le=600.0,
        description="A task whose instance stops renewing its lease for this long (the process died) "
        "ends as failed, seconds",
    )
    tasks_per_principal: int = Field(
        50,
        gt=0,
        le=10_000,
        description="Tasks one caller (issuer, subject, client) may keep at once, running or with a "
        "stored result; one more is refused",
    )
    task_max_result_bytes: int = Field(
        1024 * 1024,
        gt=0,
        le=64 * 1024 * 1024,
        description="Largest task result stored (its JSON); a larger one ends the task as failed",
    )

    # --- storage -------------------------------------------------------------------------------
    redis_url: str | None = Field(
        None,
        description="Redis URL: redis://host:6379/0 (one server), "
        "redis+sentinel://host:26379,host2:26379/<service>/0 (Sentinel) or "
        "redis+cluster://host:6379,host2:6379 (Cluster); unset means in-memory storage",
    )
    redis_key_prefix: str = Field("", description="Prefix for every Redis key (share one Redis)")
    redis_sentinel_password: str | None = Field(
        None,
        description="Password of the sentinels themselves (their requirepass), if they have one; "
        "the password of Redis goes in REDIS_URL",
    )

    # --- authorization server ------------------------------------------------------------------
    token_format: TokenFormat = Field(
        "opaque",
        description="Access token format the bundled authorization server issues: opaque or jwt (how the "
        "MCP server checks tokens is TOKEN_VALIDATION)",
    )
    access_token_ttl: int = Field(3600, gt=0, description="Access token lifetime, seconds")
    refresh_token_ttl: int = Field(30 * 24 * 3600, gt=0, description="Refresh token lifetime, seconds")
    refresh_token_grace_period: int = Field(
        30,
        ge=0,
        le=MAX_REFRESH_GRACE_PERIOD,
        description="Seconds in which a just-rotated refresh token presented again by its own client "
        "returns the same new tokens (a retry, or concurrent refreshes) instead of ending the grant; "
        "0: any second use ends it (docs/oauth.md)",
    )
    authorization_code_ttl: int = Field(120, gt=0, le=600, description="Authorization code lifetime, s")
    login_session_ttl: int = Field(8 * 3600, gt=0, description="Login cookie lifetime at the AS, s")
    jwt_signing_keys: str | None = Field(
        None,
        description="Path to a private JWKS (JSON) for JWT access tokens; unset: generated and kept "
        "in storage",
    )
    auth_users: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='Local users as JSON {"name": "<password hash>"}; empty: the dev user demo/demo',
    )
    auth_clients: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description="Pre-registered clients (JSON list of client metadata); the only way to a machine "
        "client (client_credentials, with a required scope) or a resource server (may_introspect)",
    )
    native_redirect_schemes: StringList = Field(
        default_factory=list,
        description="Private-use URI schemes native apps may use as redirect URIs (RFC 8252 7.1), "
        "comma-separated, e.g. cursor for Cursor; only for application_type native, never http(s) or "
        "script schemes",
    )
    cimd_allow_loopback: bool = Field(
        False, description="Allow http://127.0.0.1 client ID metadata documents (tests, development)"
    )
    cimd_max_bytes: int = Field(5120, gt=0, description="Largest client ID metadata document accepted")
    cimd_timeout: float = Field(5.0, gt=0, description="Timeout fetching a client ID metadata document, s")
    cimd_cache_ttl: int = Field(300, ge=0, description="Longest a metadata document is cached, s")
    cimd_failure_ttl: int = Field(
        30,
        ge=0,
        description="How long a client ID metadata document URL that failed is not fetched again, s "
        "(0: refetch every time)",
    )
    rate_limit_per_minute: int = Field(
        60,
        gt=0,
        description="Requests per minute per client IP on authorize, login, token, register, revoke; "
        "at introspect, failed client authentications per client IP",
    )
    registration_unused_ttl: int = Field(
        86_400,
        gt=0,
        description="How long a dynamically registered client is kept before any user authorized it, "
        "s; the first authorization code a user approves for it keeps it until deleted",
    )
    max_unused_registrations: int = Field(
        10_000,
        gt=0,
        description="Most dynamically registered clients kept unused at once (no user authorized "
        "them yet); one more registration deletes the oldest unused one",
    )
    introspection_rate_limit_per_minute: int = Field(
        30_000,
        gt=0,
        description="Introspection requests per minute per authenticated resource server (its own "
        "limit, never per IP; see docs/oauth.md)",
    )
    audit_log: bool = Field(True, description="Write one structured audit line per security event")
    admin_token_sha256: StringList = Field(
        default_factory=list,
        description="SHA-256 hex digests of the admin API's tokens (comma-separated or a JSON list; "
        "`python -m auth_server admin new-token` makes a token and its digest); empty: no admin API at all "
        "(docs/operations.md)",
    )
    admin_api_remote: bool = Field(
        False,
        description="Let the admin API answer clients other than loopback ones (an admin token is "
        "always required)",
    )
    upstream_oidc_issuer: str | None = Field(
        None,
        description="Sign users in at this OpenID provider instead of local users (federated login; "
        "see docs/identity-providers.md)",
    )
    upstream_oidc_client_id: str | None = Field(None, description="Our client ID at the upstream provider")
    upstream_oidc_client_secret: str | None = Field(
        None, description="Its secret (client_secret_basic); unset: a public client (PKCE only)"
    )
    upstream_oidc_scope: str = Field(
        "openid email profile", description="Scopes asked of the upstream provider (must include openid)"
    )

    # --- agent identity: enterprise assertions and delegation (docs/agent-identity.md) ---------
    enterprise_idp_issuers: StringList = Field(
        default_factory=list,
        description="Issuers of the enterprise identity providers whose ID-JAGs the token endpoint "
        "accepts (SEP-990, the jwt-bearer grant), exactly as they spell them; their keys are found by "
        "discovery; empty: the grant is off",
    )
    token_exchange_audiences: StringList = Field(
        default_factory=list,
        description="Downstream APIs (their audience URIs) the MCP server may exchange a caller's "
        "token for (RFC 8693); empty: token exchange is off",
    )
    token_exchange_ttl: int = Field(
        300,
        gt=0,
        le=3600,
        description="Lifetime of an exchanged token, s (never longer than the token it came from)",
    )
    token_exchange_client_id: str = Field(
        "mcp-server-delegate",
        description="External mode: the client ID the MCP server exchanges tokens with (the "
        "authorization server pre-registers it; it may only exchange)",
    )
    token_exchange_client_secret: str | None = Field(
        None,
        description="Its secret, >= 32 characters; needed in external mode with TOKEN_EXCHANGE_AUDIENCES",
    )
    downstream_api_url: str | None = Field(
        None,
        description="The demo downstream API (python -m downstream), which is also its audience: "
        "set, the downstream_profile tool calls it with an exchanged token (list it in "
        "TOKEN_EXCHANGE_AUDIENCES)",
    )

    # --- the MCP server as a protected resource -------------------------------------------------
    token_validation: TokenValidation = Field(
        "auto",
        description="External mode: how the MCP server checks a token: auto (a JWT against the provider's "
        "keys when its metadata publishes jwks_uri, anything else by introspection), jwt (JWTs only; "
        "other tokens 401) or introspection (every token; revocation seen at once)",
    )
    introspection_client_id: str = Field(
        "mcp-resource-server",
        description="Client ID the MCP server introspects with (external mode; it may only introspect)",
    )
    introspection_client_secret: str = Field(
        "dev-introspection-secret-change-me",
        description="Its secret; outside development your own random value of >= 32 characters "
        "(the start-up check refuses this default there)",
    )
    introspection_cache_ttl: int = Field(
        30, ge=0, description="Longest an active introspection result is cached, s"
    )
    introspection_negative_ttl: int = Field(5, ge=0, description="How long an inactive result is cached, s")
    unknown_tokens_per_minute: int = Field(
        60,
        gt=0,
        description="External mode: tokens per minute per client address (IPv6: per /64) the MCP server "
        "may ask the AS about that turn out unknown or inactive; past it that address's uncached "
        "tokens get 429 without a call",
    )
    introspection_cache_size: int = Field(10_000, gt=0, description="Introspection cache entries")
    introspection_timeout: float = Field(3.0, gt=0, description="Introspection request timeout, s")
    introspection_auth_method: IntrospectionAuthMethod = Field(
        "client_secret_basic",
        description="How the MCP server authenticates to the introspection endpoint: "
        "client_secret_basic or client_secret_post",
    )
    jwt_algorithms: StringList = Field(
        default_factory=lambda: list(DEFAULT_JWT_ALGORITHMS),
        description="Signing algorithms accepted on JWT access tokens (asymmetric only; never none or HS*)",
    )
    jwt_token_types: StringList = Field(
        default_factory=lambda: ["at+jwt"],
        description='JWT access token `typ` headers accepted (RFC 9068 at+jwt; some providers send "JWT")',
    )
    jwt_leeway: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf of JWTs, s")
    token_scope_claim: str = Field(
        "scope", min_length=1, description="Claim holding the scopes: a space-separated string or a list"
    )
    token_subject_claim: str = Field("sub", min_length=1, description="Claim naming the user")
    api_keys: Annotated[list[dict[str, Any]], NoDecode] = Field(
        default_factory=list,
        description='Static API keys: JSON [{"sha256": "<hex>", "subject": "...", "scopes": [...]}]',
    )
    api_key_header: str = Field(
        DEFAULT_API_KEY_HEADER,
        description="Header carrying a static API key besides Authorization: Bearer, e.g. "
        "x-scope3-api-key (a key sent in both is 400)",
    )
    accepted_audiences: StringList = Field(
        default_factory=list,
        description="External mode: audiences (aud) accepted besides this server's MCP URL, such as an "
        "Entra application ID, a Scalekit resource ID or an Auth0 API identifier; tokens for any other "
        "audience are refused, and the protected resource metadata still names the MCP URL",
    )
    accepted_issuers: StringList = Field(
        default_factory=list,
        description="External mode: token issuers (iss) accepted besides AUTH_SERVER_URL's, checked "
        "with its keys, such as a Scalekit environment URL (docs/identity-providers.md)",
    )

    # --- DPoP, sender-constrained tokens (RFC 9449, docs/agent-identity.md) -----------------------
    dpop_algorithms: StringList = Field(
        default_factory=lambda: list(DEFAULT_DPOP_ALGORITHMS),
        description="Signing algorithms accepted on DPoP proofs, at the token endpoint and the MCP "
        "endpoint (asymmetric only: ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512, "
        "EdDSA, Ed25519); advertised in both metadata documents",
    )
    dpop_required: bool = Field(
        False,
        description="Every client must use DPoP: the token endpoint refuses requests without a proof "
        "and the MCP server refuses Bearer tokens (its metadata says dpop_bound_access_tokens_required); "
        "false: DPoP for clients that send a proof or registered dpop_bound_access_tokens",
    )
    dpop_nonce: DpopNonceMode = Field(
        "off",
        description="Server-provided DPoP nonces (RFC 9449 sections 8 and 9): off, or required (a proof "
        "without a current nonce gets use_dpop_nonce and a fresh DPoP-Nonce header)",
    )
    dpop_proof_max_age: int = Field(
        300,
        ge=5,
        le=600,
        description="How far a DPoP proof's iat may be from the server's clock, either way, seconds "
        "(the MCP DPoP profile accepts +-300); each proof's jti is remembered this long and more",
    )

    # --- per-request principal enrichment (mcp_server/tenants.py) --------------------------------
    tenant_cache_ttl: int = Field(
        60, ge=0, description="Longest a principal's tenant record is cached, s (0: looked up every request)"
    )
    tenant_cache_size: int = Field(
        10_000, gt=0, description="Tenant records cached (least recently used dropped)"
    )
    tenant_lookup_timeout: float = Field(
        2.0, gt=0, description="Longest one tenant lookup may take before the request gets 503, s"
    )

    @field_validator("auth_users", "auth_clients", "api_keys", mode="before")
    @classmethod
    def _json_document(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        assert info.field_name is not None
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected JSON like {JSON_FORMS[info.field_name]} ({exc.msg})") from None

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=True)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (CIDR such as 10.0.0.0/8; host bits "
                    "unset); list the addresses of your reverse proxies, or * for any (dangerous)"
                ) from None
        return value

    @field_validator("native_redirect_schemes")
    @classmethod
    def _private_use_schemes(cls, value: list[str]) -> list[str]:
        schemes = [scheme.lower() for scheme in value]
        for scheme in schemes:
            if not _URI_SCHEME.fullmatch(scheme):
                raise ValueError(
                    f"{scheme!r} is not a URI scheme name (a letter, then letters, digits, +, -, .)"
                )
            if scheme in NEVER_NATIVE_SCHEMES:
                raise ValueError(f"{scheme!r} is not a private-use scheme; it can never be a native redirect")
        return list(dict.fromkeys(schemes))

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        unsafe = [alg for alg in value if alg.lower() == "none" or alg.upper().startswith("HS")]
        if unsafe or not value:
            raise ValueError(f"must list asymmetric algorithms only (such as RS256, ES256); not {unsafe}")
        return value

    @field_validator("dpop_algorithms")
    @classmethod
    def _dpop_algorithms(cls, value: list[str]) -> list[str]:
        unknown = [alg for alg in value if alg not in SUPPORTED_DPOP_ALGORITHMS]
        if unknown or not value:
            raise ValueError(
                f"must list DPoP proof algorithms from {', '.join(SUPPORTED_DPOP_ALGORITHMS)} "
                f"(asymmetric only); not {unknown}"
            )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_dpop_required(self) -> Settings:
        if self.dpop_required and self.api_keys:
            raise ValueError(
                "DPOP_REQUIRED cannot be combined with API_KEYS: a static key is bound to no DPoP key, "
                "so requiring DPoP for every client would not hold for them"
            )
        return self

    @field_validator("mcp_public_url", "auth_issuer_url", "auth_server_url", "upstream_oidc_issuer")
    @classmethod
    def _absolute_http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, for example https://mcp.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or a fragment")
        # Another provider's issuer is compared byte for byte with what it publishes, so it is
        # kept exactly as given (Auth0's ends with "/"); our own URLs lose a trailing slash.
        return value if info.field_name in ("auth_server_url", "upstream_oidc_issuer") else value.rstrip("/")

    @field_validator("api_key_header")
    @classmethod
    def _api_key_header_name(cls, value: str) -> str:
        name = value.strip()
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{value!r} is not an HTTP header name (letters, digits and - . _ ...)")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith("mcp-"):
            raise ValueError(f"{name} already means something else in an MCP request; choose another name")
        return name

    @field_validator("accepted_audiences")
    @classmethod
    def _audience_values(cls, value: list[str]) -> list[str]:
        for audience in value:
            if not audience or audience != audience.strip() or any(c.isspace() for c in audience):
                raise ValueError(f"{audience!r} is not an audience value (a non-empty string without spaces)")
        return list(dict.fromkeys(value))

    @field_validator("accepted_issuers", "enterprise_idp_issuers")
    @classmethod
    def _issuer_values(cls, value: list[str]) -> list[str]:
        for issuer in value:
            parts = urlsplit(issuer)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ValueError(
                    f"{issuer!r} is not an issuer (an absolute http(s) URL without query or fragment, "
                    "exactly as the provider's tokens spell it)"
                )
            if "{" in issuer or "}" in issuer:
                raise ValueError(f"{issuer!r} is a template, not an issuer: name one tenant's issuer")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _check_accepted_claims(self) -> Settings:
        if self.auth_mode != "external" and (self.accepted_audiences or self.accepted_issuers):
            raise ValueError(
                "ACCEPTED_AUDIENCES and ACCEPTED_ISSUERS are for AUTH_MODE=external (another provider's "
                "tokens); the bundled authorization server only issues tokens naming the MCP URL"
            )
        return self

    @model_validator(mode="after")
    def _check_upstream(self) -> Settings:
        if self.upstream_oidc_issuer and not self.upstream_oidc_client_id:
            raise ValueError("UPSTREAM_OIDC_ISSUER needs UPSTREAM_OIDC_CLIENT_ID (our client there)")
        if self.upstream_oidc_issuer and "openid" not in self.upstream_oidc_scope.split():
            raise ValueError("UPSTREAM_OIDC_SCOPE must include openid")
        return self

    @field_validator("token_exchange_audiences")
    @classmethod
    def _exchange_audiences(cls, value: list[str]) -> list[str]:
        for audience in value:
            parts = urlsplit(audience)
            if not parts.scheme or not parts.netloc or "#" in audience or any(c.isspace() for c in audience):
                raise ValueError(f"{audience!r} is not an audience URI (absolute, no fragment, no spaces)")
        return list(dict.fromkeys(value))

    @field_validator("downstream_api_url")
    @classmethod
    def _downstream_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an absolute http(s) URL without query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_agent_identity(self) -> Settings:
        if self.issuer in self.enterprise_idp_issuers:
            raise ValueError(
                "ENTERPRISE_IDP_ISSUERS lists this authorization server's own issuer: it never takes "
                "its own assertions as grants (an ID-JAG comes from another trust domain)"
            )
        if self.mcp_resource_url in self.token_exchange_audiences:
            raise ValueError(
                "TOKEN_EXCHANGE_AUDIENCES lists the MCP server itself: an exchange is for another API"
            )
        if self.downstream_api_url and self.downstream_api_url not in self.token_exchange_audiences:
            raise ValueError("DOWNSTREAM_API_URL must be listed in TOKEN_EXCHANGE_AUDIENCES")
        if self.token_exchange_client_id == self.introspection_client_id:
            raise ValueError("TOKEN_EXCHANGE_CLIENT_ID must differ from INTROSPECTION_CLIENT_ID")
        if self.auth_mode == "external" and self.token_exchange_audiences:
            secret = self.token_exchange_client_secret or ""
            if len(secret.encode()) < 32:
                raise ValueError(
                    "TOKEN_EXCHANGE_AUDIENCES in external mode needs TOKEN_EXCHANGE_CLIENT_SECRET, "
                    "at least 32 characters (the MCP server's credential for exchanging tokens)"
                )
        return self

    @field_validator("admin_token_sha256")
    @classmethod
    def _token_digests(cls, value: list[str]) -> list[str]:
        digests = [digest.strip().lower() for digest in value]
        for digest in digests:
            if not _SHA256_HEX.fullmatch(digest):
                raise ValueError(
                    "each entry must be the SHA-256 hex digest (64 characters) of an admin token, never "
                    "the token itself; python -m auth_server admin new-token makes both"
                )
        return list(dict.fromkeys(digests))

    @field_validator("request_state_keys")
    @classmethod
    def _long_enough(cls, value: list[str]) -> list[str]:
        for key in value:
            if len(key.encode()) < 32:
                raise ValueError(
                    "each key must be at least 32 characters of secret randomness "
                    '(python -c "import secrets; print(secrets.token_hex(32))")'
                )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_location(cls, value: str | None) -> str | None:
        if value is not None:
            parse_redis_url(value)
        return value

    @model_validator(mode="after")
    def _check_redis_topology(self) -> Settings:
        topology = parse_redis_url(self.redis_url).topology if self.redis_url else None
        if self.redis_sentinel_password and topology != "sentinel":
            raise ValueError("REDIS_SENTINEL_PASSWORD needs a Sentinel REDIS_URL (redis+sentinel://...)")
        if topology == "cluster" and ("{" in self.redis_key_prefix or "}" in self.redis_key_prefix):
            raise ValueError(
                "REDIS_KEY_PREFIX must not contain { or } on a Redis Cluster: the first {...} of a key "
                "picks its hash slot, so it would put every key on one node"
            )
        return self

    # --- derived URLs (one place decides them) --------------------------------------------------
    @cached_property
    def mcp_base_url(self) -> str:
        return self.mcp_public_url or f"http://{_url_host(self.host)}:{self.mcp_port}"

    @cached_property
    def mcp_resource_url(self) -> str:
        """The canonical MCP URI: the RFC 8707 resource and the audience of every token."""
        return f"{self.mcp_base_url}/mcp"

    @cached_property
    def token_audiences(self) -> frozenset[str]:
        """Every `aud` value a token may name to be for this server: the MCP URL first of all."""
        return frozenset({self.mcp_resource_url, *self.accepted_audiences})

    @cached_property
    def token_issuers(self) -> frozenset[str]:
        """Every `iss` value accepted on an access token: the trusted issuer, plus ACCEPTED_ISSUERS."""
        return frozenset({self.issuer, *self.accepted_issuers})

    @cached_property
    def issuer(self) -> str:
        if self.auth_issuer_url:
            return self.auth_issuer_url
        if self.auth_mode == "external":
            return self.auth_server_url or f"http://{_url_host(self.host)}:{self.auth_port}"
        return self.mcp_base_url

    @cached_property
    def auth_server_base_url(self) -> str:
        """Where the MCP server sends back-channel requests (introspection) to the auth server."""
        return self.auth_server_url or self.issuer

    @property
    def introspection_credential_set(self) -> bool:
        """INTROSPECTION_CLIENT_SECRET is set. Its development default is a credential only the
        bundled authorization server knows (in development): at any other provider the MCP server
        then has no introspection credential (shared/validators/introspection.py)."""
        default = type(self).model_fields["introspection_client_secret"].default
        return bool(self.introspection_client_secret != default)

    @property
    def binds_loopback(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def uses_demo_user(self) -> bool:
        """The built-in development login (demo / demo) signs users in: no AUTH_USERS, no
        UPSTREAM_OIDC_ISSUER. Only ever in development (shared/startup.py refuses it elsewhere)."""
        return not self.auth_users and not self.upstream_oidc_issuer

    @property
    def issuer_setting(self) -> str:
        """The setting that decides `issuer` (named in messages that tell an operator what to set)."""
        if self.auth_issuer_url:
            return "AUTH_ISSUER_URL"
        return "AUTH_SERVER_URL" if self.auth_mode == "external" else "MCP_PUBLIC_URL"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class SettingsError(SystemExit):
    """Raised at start-up for a bad setting; exits with a readable message instead of a trace."""


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one line per bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = ["Invalid configuration:"]
        for error in exc.errors():
            field, *inside = [str(part) for part in error["loc"]] or [""]
            name = field.upper() + "".join(f"[{part}]" for part in inside) if field else "settings"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] != "value_error" and field in JSON_FORMS:
                message += f" (expected JSON like {JSON_FORMS[field]})"
            elif error["type"] != "value_error" and field in _list_fields():
                message += f" (expected {_LIST_FORM})"
            lines.append(f"  {name}: {message}")
        raise SettingsError("\n".join(lines)) from None
    except SourceError as exc:  # a value no validator saw (the sources' own decoding)
        raise SettingsError(f"Invalid configuration:\n  {exc}") from None


def _list_fields() -> set[str]:
    return {
        name
        for name, field in Settings.model_fields.items()
        if any(isinstance(meta, NoDecode) or meta is NoDecode for meta in field.metadata)
        and name not in JSON_FORMS
    }


# Prefixes only this project's settings use: an unknown variable with one is almost surely a typo
# (REDIS_URI, AUTH_MOD) that would otherwise leave the server silently on its defaults.
SETTING_PREFIXES = (
    *("AUTH_", "MCP_", "REDIS_", "INTROSPECTION_"),
    *("JWT_", "UPSTREAM_OIDC_", "CIMD_", "METRICS_", "DPOP_"),
)
# Variables with those prefixes that other tools of the MCP world read (MCP Inspector, the
# conformance runner's preload in scripts/), not settings of this server.
FOREIGN_VARIABLES = frozenset({"MCP_BEARER_TOKEN", "MCP_AUTO_OPEN_ENABLED", "MCP_INSPECTOR_SECRET_STORE"})


def unknown_setting_warnings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> list[str]:
    """One line per variable of the environment or `.env` that looks like a setting but is none.

    "Looks like": it has one of SETTING_PREFIXES, or it is close to a setting's name. Such a
    variable is ignored, so without this warning a typo silently means "the default".
    """
    known = [name.upper() for name in Settings.model_fields]
    environ = os.environ if environ is None else environ
    env_file = Path(str(Settings.model_config.get("env_file"))) if env_file is None else env_file
    sources: dict[str, str] = {name: "environment" for name in environ}
    if env_file.is_file():
        for name in dotenv_values(env_file):
            sources.setdefault(name, str(env_file))
    warnings = []
    for name, where in sorted(sources.items()):
        upper = name.upper()
        if upper in known or upper in FOREIGN_VARIABLES or upper.startswith("MCP_INSPECTOR_"):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        if not close and not upper.startswith(SETTING_PREFIXES):
            continue
        hint = f"did you mean {close[0]}?" if close else "see .env.example for every setting"
        warnings.append(f"{name} ({where}) is not a setting and is ignored; {hint}")
    return warnings
