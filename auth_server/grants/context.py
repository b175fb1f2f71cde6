"""What every grant handler needs, passed as one object instead of six arguments."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from auth_server.audit import AuditLog
from auth_server.endpoints.forms import quoted
from auth_server.errors import OAuthError
from auth_server.grants.grant import Grants
from auth_server.resources import served_resources
from auth_server.tokens import TokenService
from shared import scopes as scope_model
from shared.settings import Settings
from shared.storage.base import Store


@dataclass(frozen=True, slots=True)
class GrantContext:
    settings: Settings
    store: Store
    tokens: TokenService
    grants: Grants
    audit: AuditLog
    clock: Callable[[], float] = field(default=time.time)

    @property
    def resources(self) -> tuple[str, ...]:
        return served_resources(self.settings)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def requested_scopes(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes of a token request: omitted means everything allowed; anything outside what
    was allowed (a scope implied by an allowed one counts as inside) is `invalid_scope`
    (OAuth 2.1 sections 3.2.2.1 and 4.3.1)."""
    wanted = scope_model.parse(requested)
    if not wanted:
        return allowed
    within = scope_model.expand(allowed)
    outside = [s for s in wanted if s not in within]
    if outside:
        raise OAuthError("invalid_scope", f"scope exceeds the grant: {quoted(' '.join(outside))}")
    return wanted
