"""Remembered consent: what a user has already allowed a given client.

Stored per (user, client) under `auth:consent:{subject}:{digest(client_id)}` for CONSENT_TTL
seconds: the scopes the user allowed and the registered redirect URIs they saw. A request is
approved without asking only when the same client asks for nothing more (no new scope, no
other redirect URI); a different client always asks, even with identical scopes (MCP security
considerations, "per-client consent"). The digest keeps CIMD URLs out of key names.
"""

from __future__ import annotations

from pydantic import BaseModel

from auth_server import crypto
from shared import scopes as scope_model
from shared.storage.base import Store

CONSENT_TTL = 90 * 24 * 3600  # ask again after 90 days even if nothing changed


class ConsentRecord(BaseModel):
    scopes: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()


def consent_key(subject: str, client_id: str) -> str:
    return f"auth:consent:{subject}:{crypto.digest(client_id)}"


class ConsentMemory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def recall(self, subject: str, client_id: str) -> ConsentRecord:
        stored = await self._store.get(consent_key(subject, client_id))
        return ConsentRecord.model_validate_json(stored) if stored else ConsentRecord()

    @staticmethod
    def covers(record: ConsentRecord, scopes: tuple[str, ...], redirect_uri: str) -> bool:
        return redirect_uri in record.redirect_uris and set(scopes) <= scope_model.CATALOGUE.expand(
            record.scopes
        )

    async def remember(
        self, subject: str, client_id: str, scopes: tuple[str, ...], redirect_uri: str
    ) -> None:
        """Add what the user just allowed to what they allowed before."""
        before = await self.recall(subject, client_id)
        after = ConsentRecord(
            scopes=tuple(dict.fromkeys((*before.scopes, *scopes))),
            redirect_uris=tuple(dict.fromkeys((*before.redirect_uris, redirect_uri))),
        )
        await self._store.set(consent_key(subject, client_id), after.model_dump_json(), ttl=CONSENT_TTL)

    async def forget(self, subject: str, client_id: str) -> None:
        """The user revoked the client: the next authorization asks again."""
        await self._store.delete(consent_key(subject, client_id))
