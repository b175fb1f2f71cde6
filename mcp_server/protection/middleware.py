"""Bearer authentication for the MCP endpoints: every HTTP request, one validator call.

Every request to /mcp, /sse and the legacy message endpoint is authenticated on its own: each
POST, each GET stream, each DELETE. A session id never stands in for a token (MCP security best
practices), so a request that carries a session id but no token gets the same 401 as any other.

What the client sees (RFC 6750, OAuth 2.1 section 5, RFC 9728 section 5.1):
- no credentials -> 401 `WWW-Authenticate: Bearer resource_metadata="...", scope="<baseline>"`,
  deliberately without `error=` (RFC 6750 section 3.1: the client did not try, nothing failed);
- a bad, expired, revoked or foreign-audience token -> 401 with `error="invalid_token"` (and the
  same `resource_metadata` and baseline `scope`, so the client can re-authorize in one step); a
  token is for this server when its `aud` names the MCP URL or one of ACCEPTED_AUDIENCES;
- a token sent two ways (two Authorization headers, Authorization plus the API-key header, which
  is API_KEY_HEADER, X-API-Key by default, or a form-body `access_token`) or a malformed `Bearer`
  header -> 400 `invalid_request`;
- the validator cannot decide (AS or JWKS unreachable) -> 503 with Retry-After, never 500;
- the client's address has used up UNKNOWN_TOKENS_PER_MINUTE (`unknown_tokens.py`) and the token
  would need a call to the AS -> 429 with Retry-After, without the call.
Tokens in the query string are ignored (OAuth 2.1 removed that method): such a request counts as
having no credentials. The scheme name is matched case-insensitively.

`Authorization: DPoP <token>` with a `DPoP` proof header is the other scheme (RFC 9449): the proof
is checked before the validator is asked and the token's binding after (`dpop.py`, which also
says what DPoP clients see). A DPoP-bound token sent as Bearer is refused (section 7.2), and so is
every Bearer token under DPOP_REQUIRED. 401 challenges name both schemes: `Bearer ...` then
`DPoP algs="..."` (only DPoP, with the metadata and scope, under DPOP_REQUIRED). Bodies never carry
internals, and neither the token nor its digest is logged.

On success the SDK's `AuthenticatedUser` goes into `scope["user"]` (the SDK binds 2025 sessions
and legacy SSE sessions to it and answers 404 to another principal), the `Principal` into
`scope["state"]["principal"]` (tools read it through `principal.current_principal`), and the SDK's
auth contextvar is set so `get_access_token()` and request-state binding work too.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterable
from urllib.parse import parse_qs

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.protection._asgi import BufferedBody, CannedResponse
from mcp_server.protection.delegation import DELEGATION_STATE_KEY, Delegation
from mcp_server.protection.dpop import DPOP_HEADER, ProofOfPossession
from mcp_server.protection.unknown_tokens import UnknownTokenLimit
from shared import metrics
from shared.bounded_cache import BoundedCache
from shared.dpop import VerifiedProof
from shared.settings import DEFAULT_API_KEY_HEADER
from shared.token_exchange import TokenExchanger
from shared.validation import (
    FailureReason,
    LookupRefused,
    Principal,
    TokenRejected,
    TokenValidator,
    ValidatorUnavailable,
    remote_lookups,
)
from shared.validators.claims import names_accepted_audience

logger = logging.getLogger(__name__)

PRINCIPAL_STATE_KEY = "principal"
SCHEME_STATE_KEY = "auth_scheme"  # "DPoP" when the request proved possession, else absent
# RFC 6750 section 2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_FORM_BODY_LIMIT = 64 * 1024
_USERS_MAX = 4096  # SDK user objects kept for principals still being presented (oldest dropped first)
# What a tool sees in AccessToken.token: the credential itself never leaves this module, so no
# tool can pass it through to an upstream service (MCP security best practices, RS-34).
REDACTED_TOKEN = "[redacted]"  # noqa: S105 - a placeholder, not a secret

_DESCRIPTIONS: dict[FailureReason, str] = {
    "expired": "The access token expired",
    "wrong_audience": "The access token was not issued for this resource",
}
_INVALID_DESCRIPTION = "The access token is invalid"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class BearerAuth:
    """ASGI middleware: authenticate the request or answer the challenge itself."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        validator: TokenValidator,
        api_key_validator: TokenValidator | None,
        resource: str,
        resource_metadata_url: str,
        challenge_scopes: Iterable[str],
        audiences: Collection[str] = (),
        api_key_header: str = DEFAULT_API_KEY_HEADER,
        unknown_tokens: UnknownTokenLimit | None = None,
        exchanger: TokenExchanger | None = None,
        dpop: ProofOfPossession | None = None,
    ) -> None:
        self.app = app
        self._exchanger = exchanger  # tools get a Delegation of OAuth tokens (delegation.py)
        self._dpop = dpop
        self._validator = validator
        self._api_keys = api_key_validator
        self._api_key_header = api_key_header.lower().encode("latin-1")
        self._unknown_tokens = unknown_tokens
        self._resource = resource
        self._audiences = frozenset({resource, *audiences})
        # id(principal) -> (principal, its AuthenticatedUser): validators that hand out the same
        # Principal for the same token (the introspection cache, the in-process validator) get
        # the SDK's user object built once. Holding the principal keeps its id from being reused.
        self._users: BoundedCache[int, tuple[Principal, AuthenticatedUser]] = BoundedCache(
            _USERS_MAX, lru=False
        )
        metadata = f"resource_metadata={_quote(resource_metadata_url)}"
        scope_param = f"scope={_quote(' '.join(challenge_scopes))}"

        def challenge(*params: str) -> list[tuple[str, str]]:
            if dpop is not None and dpop.required:
                return [dpop.challenge(*params)]
            bearer = ("WWW-Authenticate", "Bearer " + ", ".join((*params, metadata, scope_param)))
            return [bearer] if dpop is None else [bearer, dpop.offer()]

        self._no_token = CannedResponse(
            401,
            {"error": "unauthorized", "error_description": "This endpoint requires an OAuth access token"},
            challenge(),
        )
        self._invalid: dict[str, CannedResponse] = {}
        for description in {_INVALID_DESCRIPTION, *_DESCRIPTIONS.values()}:
            self._invalid[description] = CannedResponse(
                401,
                {"error": "invalid_token", "error_description": description},
                challenge('error="invalid_token"', f"error_description={_quote(description)}"),
            )
        bound = "The access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof"
        self._bound_as_bearer = CannedResponse(
            401,
            {"error": "invalid_token", "error_description": bound},
            challenge('error="invalid_token"', f"error_description={_quote(bound)}"),
        )
        self._dpop_invalid: dict[str, CannedResponse] = {}  # the same, in a DPoP challenge
        if dpop is not None:
            for description in {_INVALID_DESCRIPTION, *_DESCRIPTIONS.values()}:
                self._dpop_invalid[description] = CannedResponse(
                    401,
                    {"error": "invalid_token", "error_description": description},
                    [dpop.challenge('error="invalid_token"', f"error_description={_quote(description)}")],
                )
            required = "This resource requires a DPoP-bound access token, sent with a DPoP proof"
            self._bearer_refused = CannedResponse(
                401,
                {"error": "invalid_token", "error_description": required},
                [dpop.challenge('error="invalid_token"', f"error_description={_quote(required)}")],
            )

        def bad_request(description: str) -> CannedResponse:
            return CannedResponse(
                400,
                {"error": "invalid_request", "error_description": description},
                challenge('error="invalid_request"', f"error_description={_quote(description)}"),
            )

        self._two_ways = bad_request("Send the access token one way only, in the Authorization header")
        self._malformed = bad_request(
            "Malformed Authorization header: expected 'Bearer <token>' or 'DPoP <token>'"
        )
        self._in_body = bad_request(
            "Tokens in the request body are not supported; use the Authorization header"
        )

    def _rejected(self, reason: FailureReason, *, dpop: bool = False) -> CannedResponse:
        metrics.auth_failure(reason)
        return (self._dpop_invalid if dpop else self._invalid)[
            _DESCRIPTIONS.get(reason, _INVALID_DESCRIPTION)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"access_token" in scope.get("query_string", b""):
            # Ignored as a credential, and blanked so that no access log downstream (uvicorn logs
            # this same scope) ever writes a token a careless client put in the URL.
            scope["query_string"] = _redact_query(scope["query_string"])

        read = await self._credential(scope, receive)
        if isinstance(read, CannedResponse):
            await read.send(send)
            return
        token, validator, receive, proofs = read
        dpop = self._dpop
        proof: VerifiedProof | None = None
        if dpop is not None and proofs is not None:
            verified = await dpop.verify(scope, token, proofs)
            if isinstance(verified, CannedResponse):
                await verified.send(send)
                return
            proof = verified
        elif dpop is not None and dpop.required:
            metrics.auth_failure("dpop_required")
            await self._bearer_refused.send(send)
            return
        principal = await self._authenticate(scope, token, validator, dpop=proof is not None)
        if isinstance(principal, CannedResponse):
            await principal.send(send)
            return
        state = {**scope.get("state", {}), PRINCIPAL_STATE_KEY: principal}
        if proof is not None:
            assert dpop is not None
            confirmed = await dpop.confirm(proof, principal, receive)
            if isinstance(confirmed, CannedResponse):
                await confirmed.send(send)
                return
            receive, send = confirmed, await dpop.renewing_nonce(proof, send)
            state[SCHEME_STATE_KEY] = "DPoP"
        elif principal.cnf_jkt is not None:  # RFC 9449 section 7.2: no downgrade to Bearer
            metrics.auth_failure("dpop_required")
            await self._bound_as_bearer.send(send)
            return

        user = self._user_for(principal)
        scope["user"] = user
        scope["auth"] = AuthCredentials(list(principal.scopes))
        if self._exchanger is not None and principal.issuer is not None:  # not an API key
            state[DELEGATION_STATE_KEY] = Delegation(self._exchanger, token)
        scope["state"] = state
        reset = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)

    async def _credential(
        self, scope: Scope, receive: Receive
    ) -> tuple[str, TokenValidator, Receive, list[bytes] | None] | CannedResponse:
        """The one place the credential is read: from `Authorization: Bearer`, `Authorization:
        DPoP` or the API-key header, exactly one of them, never from the body or the query.
        Returns the token, the validator that answers for it, the `receive` to pass on (a form
        body is replayed), and with the DPoP scheme the `DPoP` header values (else None)."""
        authorization: list[bytes] = []
        api_key: list[bytes] = []
        proofs: list[bytes] = []
        form_body = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value)
            elif name == self._api_key_header:
                api_key.append(value)
            elif name == DPOP_HEADER:
                proofs.append(value)
            elif name == b"content-type" and value.lower().startswith(b"application/x-www-form-urlencoded"):
                form_body = True

        if form_body:
            buffered = BufferedBody(receive)
            body = await buffered.read(_FORM_BODY_LIMIT)
            receive = buffered.receive
            if body is not None and "access_token" in parse_qs(body.decode("latin-1")):
                metrics.auth_failure("malformed_request")
                return self._in_body

        if len(authorization) + len(api_key) > 1:
            metrics.auth_failure("malformed_request")
            return self._two_ways
        if authorization:
            scheme, _, credentials = authorization[0].decode("latin-1").partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer" or (scheme == "dpop" and self._dpop is not None):
                token = credentials.strip(" ")
                if not _B64TOKEN.fullmatch(token):
                    metrics.auth_failure("malformed_request")
                    return self._malformed
                return token, self._validator, receive, proofs if scheme == "dpop" else None
            # Another scheme (Basic...) is not a credential of ours: treated as none.
        elif api_key:
            token = api_key[0].decode("latin-1").strip()
            if not token:
                metrics.auth_failure("malformed_request")
                return self._malformed
            if self._api_keys is None:
                return self._rejected("malformed")
            return token, self._api_keys, receive, None

        metrics.auth_failure("missing")
        return self._no_token

    async def _authenticate(
        self, scope: Scope, token: str, validator: TokenValidator, *, dpop: bool = False
    ) -> Principal | CannedResponse:
        """One validator call, turned into a Principal meant for this server, or the refusal."""
        started = time.perf_counter()
        budget = self._unknown_tokens.budget_for(scope) if self._unknown_tokens is not None else None
        try:
            with remote_lookups(budget):
                principal = await validator.validate(token)
        except TokenRejected as rejected:
            logger.info("rejected a bearer credential: %s", rejected.reason)
            return self._rejected(rejected.reason, dpop=dpop)
        except LookupRefused as refused:
            metrics.auth_failure("unknown_token_limit")
            return _too_many_unknown(refused.retry_after)
        except ValidatorUnavailable as unavailable:
            metrics.auth_failure("unavailable")
            return unavailable_response(unavailable.retry_after)
        except Exception:
            # A bug or an unreachable store inside a validator: still not a 500, and retryable.
            logger.exception("token validation failed unexpectedly")
            metrics.auth_failure("unavailable")
            return unavailable_response(5)
        metrics.observe_validation(time.perf_counter() - started)

        # Defence in depth: whatever the validator, the token must be meant for this server and live.
        if not names_accepted_audience(principal.audience, self._audiences):
            return self._rejected("wrong_audience", dpop=dpop)
        if principal.expires_at is not None and principal.expires_at <= time.time():
            return self._rejected("expired", dpop=dpop)
        return principal

    def _user_for(self, principal: Principal) -> AuthenticatedUser:
        known = self._users.get(id(principal))
        if known is not None and known[0] is principal:
            return known[1]
        user = authenticated_user(principal, self._resource)
        self._users.put(id(principal), (principal, user))
        return user


def authenticated_user(principal: Principal, resource: str) -> AuthenticatedUser:
    """The SDK's view of a principal: (client_id, iss, sub) is what its sessions are bound to."""
    claims = dict(principal.claims)
    if principal.issuer is not None:
        claims["iss"] = principal.issuer
    token = AccessToken.model_construct(
        token=REDACTED_TOKEN,
        client_id=principal.client_id,
        scopes=sorted(principal.scopes),
        expires_at=principal.expires_at,
        resource=resource,
        subject=principal.subject,
        claims=claims,
    )
    return AuthenticatedUser(token)


def _redact_query(query: bytes) -> bytes:
    return b"&".join(
        b"access_token=redacted" if part.startswith(b"access_token=") else part for part in query.split(b"&")
    )


def _too_many_unknown(retry_after: int) -> CannedResponse:
    """429, not 401: the token was never looked at, so it may well be valid (RFC 6585 section 4).
    The error value is the authorization server's for its own 429s (`auth_server.rate_limit`)."""
    return CannedResponse(
        429,
        {
            "error": "temporarily_unavailable",
            "error_description": "Too many unknown tokens from this address; retry later",
        },
        [("Retry-After", str(max(1, retry_after)))],
    )


def unavailable_response(
    retry_after: int, description: str = "Authorization is temporarily unavailable"
) -> CannedResponse:
    """The 503 of every layer that cannot decide about a request right now (the validator, the
    tenant lookup): retryable, with Retry-After, and never a 500."""
    return CannedResponse(
        503,
        {"error": "temporarily_unavailable", "error_description": description},
        [("Retry-After", str(max(1, retry_after)))],
    )
