"""The token-validation seam: what the MCP server asks, and what every validator answers.

`mcp_server` depends only on this interface; which implementation answers (in-process store,
RFC 7662 introspection, RFC 9068 JWT, static API keys) is decided by the composition root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FailureReason = Literal[
    "malformed",  # not a token this validator understands
    "unknown",  # well-formed but never issued, or already forgotten
    "expired",
    "revoked",
    "wrong_audience",  # issued for another resource
    "wrong_issuer",
    "bad_signature",
    "not_an_access_token",  # a refresh token, ID token, code or secret used as a bearer
]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established from one bearer credential.

    `audience` lists every resource the token is valid for; the MCP server's middleware has
    already checked that its own URL is among them before a tool ever sees a Principal.
    """

    subject: str
    client_id: str
    scopes: frozenset[str]
    audience: tuple[str, ...] = ()
    issuer: str | None = None
    expires_at: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


class TokenRejected(Exception):
    """The credential is not acceptable: answer 401 `invalid_token`."""

    def __init__(self, reason: FailureReason, description: str = "") -> None:
        super().__init__(description or reason)
        self.reason: FailureReason = reason
        self.description = description or reason.replace("_", " ")


class ValidatorUnavailable(Exception):
    """The validator could not decide (authorization server or JWKS unreachable): answer 503."""

    def __init__(self, description: str = "authorization server unavailable", retry_after: int = 5) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after


@runtime_checkable
class TokenValidator(Protocol):
    """Turns a bearer token into a Principal, or raises TokenRejected / ValidatorUnavailable.

    Called once per HTTP request on the hot path: implementations keep it fast (hash lookups,
    bounded caches) and never log the token itself.
    """

    async def validate(self, token: str) -> Principal: ...
