"""The security audit trail: one JSON line per security event, never a credential in it.

Operators grep these lines ("who logged in", "which grant was revoked and why") and ship them to a
SIEM, so each line is a self-contained JSON object on the `auth_server.audit` logger. The fields are
fixed keyword arguments rather than free-form `**kwargs` on purpose: a token, code, secret or
password cannot end up in a line by accident, because there is no parameter to pass it through.
When a credential must be correlated, pass `fingerprint(value)`: 12 hex characters of its
SHA-256 digest, enough to match a support ticket, useless to an attacker.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Literal

from auth_server import crypto
from shared import metrics
from shared.logs import AUDIT_LOGGER, bounded

AuditEvent = Literal[
    "login_succeeded",
    "login_failed",
    "consent_granted",
    "consent_denied",
    "client_registered",
    "client_auth_failed",
    "token_issued",  # access token (and refresh token, if any) minted for any grant type
    "code_replay",  # an already redeemed authorization code was presented again
    "refresh_reuse",  # a rotated refresh token was presented again
    "revoked",  # a token was revoked at /revoke (a refresh token: with its whole grant)
    "revoke_refused",  # a client asked /revoke to end another client's token (answered as unknown)
    "app_revoked",  # everything an app held of a user ended (account page, or too many apps)
    "grant_evicted",  # a user's app held too many grants: its least recently used one ended
    "logout",  # a browser session at the authorization server ended
    "introspection_denied",
    "rate_limited",
    # The admin API (docs/operations.md): each names the admin token by `token_fp`.
    "admin_auth_failed",  # a wrong admin token (a missing one is no attempt)
    "admin_read",  # an administrator listed or looked at clients, grants or keys
    "client_disabled",
    "client_enabled",
    "client_deleted",
    "grants_revoked",  # an administrator ended grants (by user, client or id) or a machine client's tokens
    "signing_key_rotated",
    "store_purged",
]

# Events that end tokens of a user: each is also reported to `on_revoked` (the subject), so what
# the MCP server caches per principal in this process can be dropped (shared/revocations.py).
REVOKING_EVENTS: frozenset[AuditEvent] = frozenset(
    {"revoked", "app_revoked", "grant_evicted", "code_replay", "refresh_reuse", "grants_revoked"}
)
FINGERPRINT_CHARS = 12
# Some fields come from the request (a user name that failed to sign in, a client_id): each is cut
# to this, so a line stays well within shared.logs.MAX_MESSAGE_CHARS (past which the log handler
# would cut it, and it would be logged as text rather than nested JSON).
MAX_FIELD_CHARS = 256


def fingerprint(credential: str) -> str:
    """A short, non-reversible handle on a credential for log correlation."""
    return crypto.digest(credential)[:FINGERPRINT_CHARS]


class AuditLog:
    """Writes audit lines; `enabled=False` (setting AUDIT_LOG) turns it into a no-op.

    Every event that ends a user's tokens also calls `on_revoked(subject)`, whatever AUDIT_LOG
    says: in internal mode the composition root passes the process's revocation feed."""

    def __init__(
        self,
        enabled: bool = True,
        logger: logging.Logger | None = None,
        *,
        on_revoked: Callable[[str], None] | None = None,
    ) -> None:
        self._enabled = enabled
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)
        self._on_revoked = on_revoked

    def record(
        self,
        event: AuditEvent,
        *,
        ip: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
        grant_id: str | None = None,
        grant_type: str | None = None,
        endpoint: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        token_type: str | None = None,
        token_fp: str | None = None,
        jti: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Emit one line. `token_fp` must come from `fingerprint()`, never the credential itself.

        Every event is also counted in /metrics (`mcpref_audit_events_total`, and issued tokens in
        `mcpref_tokens_issued_total` by grant type), whether or not AUDIT_LOG writes the line."""
        metrics.audit_event(event)
        if event == "token_issued":
            metrics.token_issued(grant_type)
        if subject is not None and self._on_revoked is not None and event in REVOKING_EVENTS:
            self._on_revoked(subject)
        if not self._enabled:
            return
        fields = {
            "event": event,
            "ts": round(time.time(), 3),
            "ip": ip,
            "client_id": client_id,
            "subject": subject,
            "grant_id": grant_id,
            "grant_type": grant_type,
            "endpoint": endpoint,
            "scope": scope,
            "resource": resource,
            "token_type": token_type,
            "token_fp": token_fp,
            "jti": jti,
            "reason": reason,
        }
        # Each field bounded, so the line stays whole JSON within what a log line may carry.
        line = json.dumps(
            {
                k: v if not isinstance(v, str) else bounded(v, MAX_FIELD_CHARS)
                for k, v in fields.items()
                if v is not None
            },
            separators=(",", ":"),
        )
        self._logger.info(line)
