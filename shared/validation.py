"""The token-validation seam: what the MCP server asks, and what every validator answers.

`mcp_server` depends only on this interface; which implementation answers (in-process store,
RFC 7662 introspection, RFC 9068 JWT, static API keys) is decided by the composition root.

One more thing crosses the seam, for validators that ask another server about a token they have
not seen (introspection): what that costs is bounded per caller. The MCP server runs each
validation inside `remote_lookups(budget)`, with the budget of the request's client address; such
a validator spends from `current_lookup_budget()` before it asks, and raises `LookupRefused` when
nothing is left, so junk tokens from one address never use up the authorization server for
everyone else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from shared.retry_after import UNAVAILABLE

FailureReason = Literal[
    "malformed",  # not a token this validator understands
    "unknown",  # well-formed but never issued, or already forgotten
    "expired",
    "revoked",
    "wrong_audience",  # issued for another resource
    "wrong_issuer",
    "bad_signature",
    "not_an_access_token",  # a refresh token, ID token, code or secret used as a bearer
    "unsupported_binding",  # bound (cnf) to a proof this server cannot check, such as an mTLS certificate
]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established from one bearer credential.

    `audience` lists every resource the token is valid for; the MCP server's middleware has
    already checked that its own URL is among them before a tool ever sees a Principal.
    `cnf_jkt` is the RFC 7638 thumbprint of the key a DPoP-bound token is bound to (its
    `cnf.jkt`, RFC 9449 section 6), None for a bearer token: the middleware then demands a
    DPoP proof by that key with every request, and refuses the token sent as Bearer.
    """

    subject: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...] = ()
    issuer: str | None = None
    expires_at: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    cnf_jkt: str | None = None


class TokenRejected(Exception):
    """The credential is not acceptable: answer 401 `invalid_token`."""

    def __init__(self, reason: FailureReason, description: str = "") -> None:
        super().__init__(description or reason)
        self.reason: FailureReason = reason
        self.description = description or reason.replace("_", " ")


class ValidatorUnavailable(Exception):
    """The validator could not decide (authorization server or JWKS unreachable): answer 503."""

    def __init__(
        self, description: str = "authorization server unavailable", retry_after: int = UNAVAILABLE
    ) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after


class LookupRefused(Exception):
    """This caller may not make the validator ask the authorization server now (too many of its
    tokens turned out unknown): answer 429 with Retry-After, without asking."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many unknown tokens")
        self.retry_after = retry_after


class LookupBudget(Protocol):
    """How many remote lookups one caller may still cause (see the module docstring)."""

    def spend(self) -> int:
        """Take one lookup: 0 when granted, else the seconds until one will be (nothing taken)."""

    def refund(self) -> None:
        """Give a granted lookup back: the token was valid, or the server could not answer."""


_lookup_budget: ContextVar[LookupBudget | None] = ContextVar("lookup_budget", default=None)


@contextlib.contextmanager
def remote_lookups(budget: LookupBudget | None) -> Iterator[None]:
    """Validate, within this block, on behalf of a caller whose remote lookups `budget` bounds."""
    reset = _lookup_budget.set(budget)
    try:
        yield
    finally:
        _lookup_budget.reset(reset)


def current_lookup_budget() -> LookupBudget | None:
    """The budget of the caller being validated for; None outside `remote_lookups` (no bound)."""
    return _lookup_budget.get()


@runtime_checkable
class TokenValidator(Protocol):
    """Turns a bearer token into a Principal, or raises TokenRejected / ValidatorUnavailable.

    Called once per HTTP request on the hot path: implementations keep it fast (hash lookups,
    bounded caches) and never log the token itself.
    """

    async def validate(self, token: str) -> Principal: ...
