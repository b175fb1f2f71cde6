"""Who this process just saw lose their tokens: the signal that per-principal caches listen to.

What the MCP server caches per principal (the tenant record of `mcp_server/tenants.py`) outlives
any one token, so it needs to hear when a principal's tokens are revoked. How that news reaches
the MCP server depends on where the authorization server runs:

- internal mode: the authorization server runs in this process; every revocation it performs
  (RFC 7009 /revoke, an app revoked on the account page, a replayed code or refresh token ending a
  grant, a grant evicted) reports the subject here as it happens (`auth_server.audit.AuditLog`).
  Other instances behind the same Redis are not told.
- external mode, introspection: the MCP server learns of a revocation only when introspection
  answers "inactive" for a token it had cached as active and that has not expired yet
  (`shared.validators.introspection`), so within INTROSPECTION_CACHE_TTL of the revocation (not at
  all with that cache off, when nothing was cached to compare with).
- external mode, JWT: never; a JWT is valid until its `exp`, revoked or not.

A feed holds plain callables, called synchronously in subscription order; a listener must be
cheap and must not raise (the revocation itself already happened).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

RevocationListener = Callable[[str | None, str], None]
"""Called with (issuer, subject) of a principal whose tokens were revoked."""


class RevocationFeed:
    """One per process, built by the composition root; publishers and listeners never meet."""

    def __init__(self) -> None:
        self._listeners: list[RevocationListener] = []

    def subscribe(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def revoked(self, issuer: str | None, subject: str) -> None:
        for listener in self._listeners:
            try:
                listener(issuer, subject)
            except Exception:  # a listener's bug must not turn a revocation into an error
                logger.exception("a revocation listener failed")
