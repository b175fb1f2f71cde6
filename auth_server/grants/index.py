"""Who authorized what: per-user and per-client indexes of grants, for the account page and admins.

A grant's own records (`grant.py`) are found by grant id only; nothing there answers "which apps
has this user authorized" or "which users does this client act for". These indexes do, as Store
expiring indexes (each member expires on its own, the key with its last member):

* `auth:apps:{digest(subject)}`: the client_ids a user authorized, each kept as long as its
  longest-lived grant or its remembered consent. At most MAX_APPS_PER_USER; one more evicts the
  app whose authorization would expire soonest, i.e. the one authorized or used least recently
  (the caller ends it: grants and consent).
* `auth:app-grants:{digest(subject)}:{digest(client_id)}`: the grant ids of one user and one
  client, each kept exactly as long as the grant record. At most MAX_GRANTS_PER_APP (a client
  re-authorizing on every start, or on several devices, has several); one more ends the least
  recently used of them.
* `auth:app-users:{digest(client_id)}`: the subjects a client holds a grant or consent of. No
  count limit (it is as large as the client's user base, one entry per user, who each needed to
  sign in and consent), but never stale: expired members are dropped on every write.
* `auth:app-revoked:{digest(subject)}:{digest(client_id)}`: when a user last revoked the client
  (a short-lived marker, see `AuthorizedApps.revoke`).
* `auth:clients`: the client_ids an administrator may look for besides the configured ones: every
  client holding a grant or a consent (as long as it does), and dynamically registered and
  disabled clients (until deleted: REGISTERED_LISTED_FOR). Nothing else lists clients, the Store
  having no way to enumerate keys. One key for the whole deployment: a member per client.
* `auth:client-tokens:{digest(client_id)}`: the Store keys of a machine client's live
  client_credentials access tokens (they belong to no grant), each until it expires, so that
  disabling or revoking the client ends them too.

Members are only hints: every reader checks the grant record (the truth) and prunes what is gone.
Nothing here is written by an anonymous caller: a grant needs a signed-in user's consent.
"""

from __future__ import annotations

from shared.storage.base import Store
from shared.storage.records import (
    CLIENTS_KEY,
    app_grants_key,
    app_revoked_key,
    app_users_key,
    apps_key,
    machine_tokens_key,
)

MAX_APPS_PER_USER = 100
MAX_GRANTS_PER_APP = 25
# Longer than an authorization code can live (AUTHORIZATION_CODE_TTL is at most 600 s) plus any
# token request in flight: a code approved before a revocation is refused for as long as it exists.
APP_REVOKED_TTL = 900
# "Until removed": an expiring index member needs a lifetime, and a registration has none.
REGISTERED_LISTED_FOR = 100 * 365 * 24 * 3600


class GrantIndex:
    """The index keys above, written and read; what evictions mean is the caller's business."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add_grant(self, subject: str, client_id: str, grant_id: str, ttl: float) -> list[str]:
        """Index a grant living `ttl` more seconds; returns the grant ids evicted to make room."""
        return await self._store.index_add(
            app_grants_key(subject, client_id), grant_id, ttl, limit=MAX_GRANTS_PER_APP
        )

    async def add_app(self, subject: str, client_id: str, ttl: float) -> list[str]:
        """Index the app (a grant or a consent lives `ttl` more seconds); returns the client_ids
        of the apps evicted to make room."""
        await self.add_client(client_id, ttl)
        await self._store.index_add(app_users_key(client_id), subject, ttl)
        return await self._store.index_add(apps_key(subject), client_id, ttl, limit=MAX_APPS_PER_USER)

    async def add_client(self, client_id: str, ttl: float = REGISTERED_LISTED_FOR) -> None:
        """List the client for administrators for at least `ttl` more seconds."""
        await self._store.index_add(CLIENTS_KEY, client_id, ttl)

    async def clients(self) -> list[str]:
        """Every listed client_id, sorted."""
        return sorted(await self._store.index_members(CLIENTS_KEY))

    async def remove_client(self, client_id: str) -> None:
        await self._store.index_remove(CLIENTS_KEY, client_id)

    async def add_machine_token(self, client_id: str, store_key: str, ttl: float) -> None:
        await self._store.index_add(machine_tokens_key(client_id), store_key, ttl)

    async def machine_tokens(self, client_id: str) -> list[str]:
        """The Store keys of `client_id`'s live client_credentials access tokens."""
        return list(await self._store.index_members(machine_tokens_key(client_id)))

    async def forget_machine_tokens(self, client_id: str) -> None:
        await self._store.delete(machine_tokens_key(client_id))

    async def apps_of(self, subject: str) -> list[str]:
        """The client_ids of the apps `subject` authorized."""
        return list(await self._store.index_members(apps_key(subject)))

    async def grants_of(self, subject: str, client_id: str) -> list[str]:
        return list(await self._store.index_members(app_grants_key(subject, client_id)))

    async def users_of(self, client_id: str) -> list[str]:
        """The subjects `client_id` holds a grant or a consent of (for admins)."""
        return sorted(await self._store.index_members(app_users_key(client_id)))

    async def remove_grant(self, subject: str, client_id: str, grant_id: str) -> None:
        await self._store.index_remove(app_grants_key(subject, client_id), grant_id)

    async def remove_app(self, subject: str, client_id: str) -> None:
        await self._store.delete(app_grants_key(subject, client_id))
        await self._store.index_remove(apps_key(subject), client_id)
        await self._store.index_remove(app_users_key(client_id), subject)

    async def mark_revoked(self, subject: str, client_id: str, revoked_at: int) -> None:
        await self._store.set(app_revoked_key(subject, client_id), str(revoked_at), ttl=APP_REVOKED_TTL)

    async def revoked_at(self, subject: str, client_id: str) -> int | None:
        raw = await self._store.get(app_revoked_key(subject, client_id))
        return int(raw) if raw is not None and raw.isdigit() else None
