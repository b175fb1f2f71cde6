"""Remembered consent: what a user has already allowed a given client.

Stored per (user, client) under `auth:consent:{subject}:{digest(client_id)}` for CONSENT_TTL
seconds: the scopes the user allowed and the registered redirect URIs they saw. A request is
approved without asking only when the same client asks for nothing more (no new scope, no
other redirect URI); a different client always asks, even with identical scopes (MCP security
considerations, "per-client consent"). The digest keeps CIMD URLs out of key names.
"""

from __future__ import annotations

from pydantic import BaseModel

from shared import scopes as scope_model
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import consent_key

CONSENT_TTL = 90 * 24 * 3600  # ask again after 90 days even if nothing changed


class ConsentRecord(BaseModel):
    scopes: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()


class ConsentMemory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def recall(self, subject: str, client_id: str) -> ConsentRecord:
        return (
            await records.read(self._store, consent_key(subject, client_id), ConsentRecord) or ConsentRecord()
        )

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
        await records.write(self._store, consent_key(subject, client_id), after, ttl=CONSENT_TTL)

    async def forget(self, subject: str, client_id: str) -> None:
        """The user revoked the client: the next authorization asks again."""
        await self._store.delete(consent_key(subject, client_id))
