"""Internal mode's token exchange: the MCP server asks the grant in process, not over HTTP.

The authorization server lives in the MCP server's process, so the MCP server's delegation
credential needs no secret: the call itself is the authentication, and no client at /token can
use it (there is no such client in internal mode, as there is no introspection client). The rules
are the grant's (`grants/token_exchange.py`), applied to the same Store; the actor is
TOKEN_EXCHANGE_CLIENT_ID.
"""

from __future__ import annotations

from auth_server.audit import AuditLog
from auth_server.clients.registry import StoreClientRegistry
from auth_server.errors import OAuthError
from auth_server.grants.context import GrantContext
from auth_server.grants.token_exchange import exchange_for
from auth_server.services import BackChannel
from shared.settings import Settings
from shared.storage.base import StorageUnavailable, Store
from shared.token_exchange import ACCESS_TOKEN_TYPE, ExchangedToken, ExchangeRefused, ExchangeUnavailable


class InProcessTokenExchanger:
    """A `shared.token_exchange.TokenExchanger` calling the grant directly."""

    def __init__(self, context: GrantContext, actor: str) -> None:
        self._context = context
        self._actor = actor

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> InProcessTokenExchanger:
        registry = StoreClientRegistry.from_settings(settings, store)
        channel = BackChannel.from_settings(settings, store, registry, audit=AuditLog(settings.audit_log))
        return cls(channel.grant_context, settings.token_exchange_client_id)

    async def exchange(self, subject_token: str, *, audience: str, scope: str) -> ExchangedToken:
        try:
            issued = await exchange_for(
                self._context,
                actor=self._actor,
                subject_token=subject_token,
                subject_token_type=ACCESS_TOKEN_TYPE,
                audience=audience,
                scope=scope,
                ip=None,
            )
        except OAuthError as exc:
            raise ExchangeRefused(exc.error, exc.description or "") from None
        except StorageUnavailable:
            raise ExchangeUnavailable("storage unavailable") from None
        return ExchangedToken(issued.access_token, issued.expires_in, issued.scope)
