"""A grant: one consent by one user to one client, and every token issued from it.

An authorization code starts a grant (its id was chosen at /authorize); each token minted from
the code, and from every refresh token that descends from it, joins the grant. Ending the grant
(code replay, refresh-token reuse, revocation of a refresh token) deletes all of them at once.

Store layout (`{id}` is a hash tag, `same_slot`: a grant's three keys share one Redis Cluster hash
slot, so ending it deletes its record and token set in one command; its tokens are keyed by their
own digests, in other slots, and are deleted slot by slot):
* `auth:grant:{id}`: the GrantRecord (JSON), TTL = the longest-lived token in it, renewed on
  every rotation.
* `auth:grant:{id}:tokens`: set of the Store keys of its tokens, same TTL.
* `auth:grant-revoked:{id}`: a short-lived tombstone. A refresh or code redemption that was
  already in flight when the grant ended checks it after writing its tokens and deletes them
  again, so a race cannot leave a live token behind in a revoked grant.

Which grants a user or a client holds is indexed separately (`index.py`).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from auth_server.grants.index import GrantIndex
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import grant_key, grant_members_key, grant_tombstone_key

TOMBSTONE_TTL = 300  # far longer than any token request can be in flight


class GrantRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    grant_id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    created_at: int
    authorized_at: int = 0  # when the user approved it (its code was issued); 0: not recorded
    last_used_at: float = 0  # when a token was last issued from it (code redemption or refresh)


class Grants:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._index = GrantIndex(store)

    async def save(self, record: GrantRecord, ttl: float) -> bool:
        """Create the grant, or renew its TTL (rotation). Called after `attach` succeeded; if a
        revocation slipped in between, the record is deleted again and the answer is False (the
        tombstone is written before a revocation deletes the record, so one of the two sees the
        other)."""
        await records.write(self._store, grant_key(record.grant_id), record, ttl=ttl)
        if await self._store.get(grant_tombstone_key(record.grant_id)) is None:
            return True
        await self._store.delete(grant_key(record.grant_id))
        return False

    async def get(self, grant_id: str) -> GrantRecord | None:
        return await records.read(self._store, grant_key(grant_id), GrantRecord)

    async def attach(self, grant_id: str, store_keys: Iterable[str], ttl: float) -> bool:
        """Record freshly written tokens as members. False, with the tokens deleted again, if
        the grant was revoked meanwhile; the caller then answers invalid_grant."""
        keys = tuple(store_keys)
        await self._store.sadd(grant_members_key(grant_id), *keys, ttl=ttl)
        if await self._store.get(grant_tombstone_key(grant_id)) is None:
            return True
        await self._store.delete(*keys)
        return False

    async def prune(self, grant_id: str) -> int:
        """Forget the members whose tokens are gone (expired, consumed by a rotation); returns how
        many. A grant refreshed for months otherwise remembers every token it ever held."""
        members = await self._store.smembers(grant_members_key(grant_id))
        gone = [key for key in members if await self._store.get(key) is None]
        return await self._store.srem(grant_members_key(grant_id), *gone)

    async def revoke(self, grant_id: str) -> int:
        """End the grant: every token in it stops working now. Returns how many tokens were
        still alive. Idempotent."""
        await self._store.set(grant_tombstone_key(grant_id), "1", ttl=TOMBSTONE_TTL)
        record = await self.get(grant_id)
        members = await self._store.smembers(grant_members_key(grant_id))
        alive = await self._store.delete(*members) if members else 0
        await self._store.delete(grant_key(grant_id), grant_members_key(grant_id))
        if record is not None:
            await self._index.remove_grant(record.subject, record.client_id, grant_id)
        return alive
