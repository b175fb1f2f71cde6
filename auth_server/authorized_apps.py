"""The apps a user has authorized, and ending one of them at once (account page; admin surface).

A user has authorized an app (a client) while its remembered consent or one of its grants lives.
Every grant saved and every consent remembered goes through here, so the indexes of
`grants/index.py` always know them; listing reads those indexes and checks each grant record.

Revoking an app for a user ends, in this order:

1. a marker with the time of the revocation (plus REVOCATION_MARGIN): a grant whose user approved
   it no later than that can no longer be saved. So an authorization code approved before the
   revocation and redeemed after it is refused with invalid_grant, and a code redemption already
   in flight is undone (it indexes its grant, then checks the marker; the revocation writes the
   marker, then reads the index: one of the two sees the other);
2. the remembered consent: the next /authorize shows the consent page again;
3. every grant of that user and client (`Grants.revoke`): refresh tokens, opaque access tokens and
   the `jti` records of JWT access tokens are deleted, so introspection and the in-process
   validator answer "inactive" on the very next request, on every instance sharing the Store;
4. the index entries.

"Last used" is when a token was last issued from a grant (code redemption or refresh), recorded
on the token endpoint: validating a token at /mcp writes nothing. So it lags real use by at most
ACCESS_TOKEN_TTL: a client that stops refreshing has stopped using the app within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from auth_server.audit import AuditLog
from auth_server.consents import CONSENT_TTL, ConsentMemory, ConsentRecord
from auth_server.grants.grant import GrantRecord, Grants
from auth_server.grants.index import MAX_APPS_PER_USER, MAX_GRANTS_PER_APP, GrantIndex
from shared import scopes as scope_model
from shared.storage.base import Store

# Codes approved up to this many seconds after a revocation are refused too: an approval racing
# the revocation (its consent check just before, its code just after), and clock differences
# between instances. Nobody re-approves on the consent page that fast after revoking.
REVOCATION_MARGIN = 2


@dataclass(frozen=True, slots=True)
class AuthorizedApp:
    """One app as its user sees it: what it may do and when it last got a token."""

    client_id: str
    grants: tuple[GrantRecord, ...]
    consent: ConsentRecord

    @property
    def scopes(self) -> tuple[str, ...]:
        """Everything the app may do: the remembered consent and every live grant."""
        granted = (scope for grant in self.grants for scope in scope_model.parse(grant.scope))
        return tuple(dict.fromkeys((*self.consent.scopes, *granted)))

    @property
    def last_used_at(self) -> float | None:
        """When a token was last issued to it (None: it holds no live grant)."""
        return max((grant.last_used_at or grant.created_at for grant in self.grants), default=None)


@dataclass(frozen=True, slots=True)
class RevokedApp:
    grants: int
    live_tokens: int


class AuthorizedApps:
    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        *,
        grants: Grants | None = None,
        consents: ConsentMemory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._index = GrantIndex(store)
        self._grants = grants or Grants(store)
        self._consents = consents or ConsentMemory(store)
        self._audit = audit
        self._clock = clock

    # -- writing (token endpoint, consent page) --------------------------------------------

    async def record_grant(self, record: GrantRecord, ttl: float) -> bool:
        """Save the grant for `ttl` seconds and index it. False when it must not exist: revoked
        while this request was in flight, or approved before its app was revoked (the grant is
        ended again then; the caller answers invalid_grant)."""
        subject, client_id = record.subject, record.client_id
        if not await self._grants.save(record, ttl):
            return False
        for grant_id in await self._index.add_grant(subject, client_id, record.grant_id, ttl):
            alive = await self._grants.revoke(grant_id)
            self._audit.record(
                "grant_evicted",
                client_id=client_id,
                subject=subject,
                grant_id=grant_id,
                reason=f"over {MAX_GRANTS_PER_APP} grants for this app: least recently used ended "
                f"({alive} live tokens)",
            )
        await self._index_app(subject, client_id, ttl)
        revoked_at = await self._index.revoked_at(subject, client_id)
        if revoked_at is not None and record.authorized_at <= revoked_at:
            await self._grants.revoke(record.grant_id)
            return False
        return True

    async def remember_consent(
        self, subject: str, client_id: str, scopes: tuple[str, ...], redirect_uri: str
    ) -> None:
        await self._consents.remember(subject, client_id, scopes, redirect_uri)
        await self._index_app(subject, client_id, CONSENT_TTL)

    async def _index_app(self, subject: str, client_id: str, ttl: float) -> None:
        for evicted in await self._index.add_app(subject, client_id, ttl):
            await self.revoke(
                subject,
                evicted,
                reason=f"over {MAX_APPS_PER_USER} apps: the one authorized or used least recently ended",
            )

    # -- reading ---------------------------------------------------------------------------

    async def of_user(self, subject: str) -> list[AuthorizedApp]:
        """Every app `subject` authorized, most recently used first (apps holding no grant, only
        a remembered consent, last); stale index entries (grants and consent gone) are pruned."""
        apps = []
        for client_id in await self._index.apps_of(subject):
            grants = await self.grants_of(subject, client_id)
            consent = await self._consents.recall(subject, client_id)
            if grants or consent.scopes:
                apps.append(AuthorizedApp(client_id, tuple(grants), consent))
            else:
                await self._index.remove_app(subject, client_id)
        return sorted(apps, key=lambda app: -(app.last_used_at or 0))

    async def grants_of(self, subject: str, client_id: str) -> list[GrantRecord]:
        """The live grants of one user and one client, oldest first."""
        found = []
        for grant_id in await self._index.grants_of(subject, client_id):
            record = await self._grants.get(grant_id)
            if record is None or (record.subject, record.client_id) != (subject, client_id):
                await self._index.remove_grant(subject, client_id, grant_id)
            else:
                found.append(record)
        return sorted(found, key=lambda grant: grant.created_at)

    async def tidy(self, subject: str, client_id: str) -> int:
        """Drop the index entries of one user's app that point to nothing (grants ended by other
        means, the app itself once it holds neither grant nor consent); returns how many."""
        indexed = await self._index.grants_of(subject, client_id)
        live = await self.grants_of(subject, client_id)
        dropped = len(indexed) - len(live)
        if not live and not (await self._consents.recall(subject, client_id)).scopes:
            await self._index.remove_app(subject, client_id)
            dropped += 1
        return dropped

    async def has_authorized(self, subject: str, client_id: str) -> bool:
        return client_id in await self._index.apps_of(subject)

    async def users_of(self, client_id: str) -> list[str]:
        """The subjects `client_id` holds a grant or a remembered consent of (for admins)."""
        return await self._index.users_of(client_id)

    # -- ending ----------------------------------------------------------------------------

    async def revoke(self, subject: str, client_id: str, *, reason: str, ip: str | None = None) -> RevokedApp:
        """End everything `client_id` holds of `subject` (see the module docstring). Idempotent."""
        await self._index.mark_revoked(subject, client_id, int(self._clock()) + REVOCATION_MARGIN)
        await self._consents.forget(subject, client_id)
        grant_ids = await self._index.grants_of(subject, client_id)
        live_tokens = 0
        for grant_id in grant_ids:
            live_tokens += await self._grants.revoke(grant_id)
        await self._index.remove_app(subject, client_id)
        self._audit.record(
            "app_revoked",
            ip=ip,
            client_id=client_id,
            subject=subject,
            reason=f"{reason}: {len(grant_ids)} grants, {live_tokens} live tokens",
        )
        return RevokedApp(len(grant_ids), live_tokens)
