"""What an administrator can do, on the Store every instance shares (the admin API calls it).

Each action takes plain arguments and returns a pydantic model the API serialises; each that
changes something is audited with the admin token's fingerprint (`by`) and the caller's address.

Ending a client's access (disable, delete, revoke by client) reaches everything the Store can find
for it: every user's grants with their refresh tokens, opaque access tokens and the `jti` records
of JWT access tokens (`AuthorizedApps.revoke`, per user: the remembered consent goes too), and its
own client_credentials tokens (indexed per client). The in-process validator and /introspect
refuse them from the next request on, on every instance; an MCP server that caches introspection
(external mode) within INTROSPECTION_CACHE_TTL, and one that validates JWTs itself only at their
`exp`. Grants given before the per-user indexes existed are found from their next refresh on.

Disabled is a flag the client registry reads on every lookup (`DisabledClients`): the client
neither authenticates (/token, /revoke, /introspect: 401 invalid_client) nor starts an
authorization (an error page); a request already past those checks is stopped when it issues its
tokens (`GrantContext.issue_in_grant` reads the flag after indexing its grant). Enabling it again
does not bring anything back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from auth_server.audit import AuditLog
from auth_server.authorized_apps import AuthorizedApps
from auth_server.clients.registry import StoreClientRegistry
from auth_server.grants.grant import GrantRecord, Grants
from auth_server.grants.index import GrantIndex
from auth_server.models import MACHINE_SUBJECT_PREFIX, Client, ClientSource, looks_like_metadata_url
from auth_server.signing_keys import KeyInfo, SigningKeyError, SigningKeys
from shared.settings import Settings, TokenFormat
from shared.storage.base import Store

# A deleted client's id is refused this long, so that a token request already in flight cannot
# mint into it (as a grant's tombstone does, auth_server/grants/grant.py).
DELETED_REFUSED_FOR = 300
REASON = "by an administrator"


class NoSuchThing(Exception):
    """The client, grant or key asked about does not exist (the message says which)."""


class NotAllowed(Exception):
    """The action cannot apply to this object (a configured client cannot be deleted...)."""


class ClientView(BaseModel):
    client_id: str
    client_name: str | None
    # None: a client ID metadata document this server has not fetched lately (so only its URL is known)
    source: ClientSource | None
    disabled: bool
    token_endpoint_auth_method: str | None = None
    grant_types: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    scope: str | None = None
    may_introspect: bool = False
    client_id_issued_at: int | None = None

    @classmethod
    def of(cls, client_id: str, client: Client | None, *, disabled: bool) -> ClientView:
        if client is None:
            return cls(client_id=client_id, client_name=None, source=None, disabled=disabled)
        return cls(
            client_id=client_id,
            client_name=client.client_name,
            source=client.source,
            disabled=disabled,
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            grant_types=client.grant_types,
            redirect_uris=client.redirect_uris,
            scope=client.scope,
            may_introspect=client.may_introspect,
            client_id_issued_at=client.client_id_issued_at or None,
        )


class ClientDetail(ClientView):
    users: list[str]  # subjects it holds a grant or remembered consent of
    grants: int
    machine_tokens: int  # live client_credentials access tokens


class ClientList(BaseModel):
    clients: list[ClientView]


class GrantView(BaseModel):
    grant_id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    created_at: int
    authorized_at: int
    last_used_at: float

    @classmethod
    def of(cls, grant: GrantRecord) -> GrantView:
        return cls(**grant.model_dump())


class GrantList(BaseModel):
    grants: list[GrantView]


class Ended(BaseModel):
    """What an action ended: grants, and the tokens in them (and machine tokens) still alive."""

    grants: int
    live_tokens: int


class ClientChange(BaseModel):
    client_id: str
    disabled: bool
    deleted: bool = False
    ended: Ended


class KeyList(BaseModel):
    keys: list[KeyInfo]


class RotatedKey(BaseModel):
    kid: str
    keys: list[KeyInfo]


class PurgeReport(BaseModel):
    expired_removed: int  # keys and index members the store dropped now (Redis: 0, see drop_expired)
    clients_checked: int
    index_entries_pruned: int  # grant ids, apps and clients the indexes listed but that were gone
    grant_token_entries_pruned: int  # tokens remembered by a grant that had expired or been consumed
    next: str | None  # pass as `after` for the next page; None: done


class AdminService:
    def __init__(
        self,
        store: Store,
        registry: StoreClientRegistry,
        grants: Grants,
        apps: AuthorizedApps,
        keys: SigningKeys,
        audit: AuditLog,
        *,
        token_format: TokenFormat,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._registry = registry
        self._grants = grants
        self._apps = apps
        self._keys = keys
        self._audit = audit
        self._index = GrantIndex(store)
        self._token_format = token_format
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, audit: AuditLog | None = None
    ) -> AdminService:
        audit = audit or AuditLog(settings.audit_log)
        grants = Grants(store)
        return cls(
            store,
            StoreClientRegistry.from_settings(settings, store),
            grants,
            AuthorizedApps(store, audit, grants=grants),
            SigningKeys.from_settings(settings, store),
            audit,
            token_format=settings.token_format,
        )

    # -- clients ---------------------------------------------------------------------------

    async def clients(self) -> ClientList:
        """Configured clients, registered ones, any holding a grant or consent, disabled ones."""
        views = []
        for client_id in sorted({*self._registry.configured, *await self._index.clients()}):
            client = await self._registry.known(client_id)
            disabled = await self._registry.disabled.is_disabled(client_id)
            if client is not None or disabled or looks_like_metadata_url(client_id):
                views.append(ClientView.of(client_id, client, disabled=disabled))
        return ClientList(clients=views)

    async def client(self, client_id: str) -> ClientDetail:
        client = await self._registry.known(client_id)
        disabled = await self._registry.disabled.is_disabled(client_id)
        users = await self._index.users_of(client_id)
        if client is None and not disabled and not users:
            raise NoSuchThing(f"no client {client_id!r} is known here")
        grants = sum([len(await self._apps.grants_of(user, client_id)) for user in users])
        view = ClientView.of(client_id, client, disabled=disabled)
        return ClientDetail(
            **view.model_dump(),
            users=users,
            grants=grants,
            machine_tokens=len(await self._index.machine_tokens(client_id)),
        )

    async def set_disabled(self, client_id: str, disabled: bool, *, by: str, ip: str) -> ClientChange:
        """Disable (ending everything the client holds) or enable a client. Any client_id this
        server knows, and any metadata-document URL (one not seen yet can be refused ahead)."""
        if disabled:
            await self._must_exist(client_id)
            await self._registry.disabled.disable(client_id, at=int(self._clock()))
            await self._index.add_client(client_id)  # listed while disabled
            ended = await self._end_access(client_id, ip=ip)
            event: Literal["client_disabled", "client_enabled"] = "client_disabled"
        else:
            if not await self._registry.disabled.enable(client_id):
                await self._must_exist(client_id)
            ended, event = Ended(grants=0, live_tokens=0), "client_enabled"
        self._audit.record(event, ip=ip, client_id=client_id, token_fp=by, reason=_summary(ended))
        return ClientChange(client_id=client_id, disabled=disabled, ended=ended)

    async def delete(self, client_id: str, *, by: str, ip: str) -> ClientChange:
        """End everything the client holds and forget it: a registered client's registration, a
        metadata-document client's cached document (it comes back on its next use unless it is
        disabled). A configured client cannot be deleted: it is configuration."""
        if client_id in self._registry.configured:
            raise NotAllowed(
                f"{client_id!r} is configured (AUTH_CLIENTS or the introspection client): remove it "
                "there, or disable it"
            )
        await self._must_exist(client_id)
        stays_disabled = await self._registry.disabled.disabled_for_good(client_id)
        if not stays_disabled:
            await self._registry.disabled.disable(client_id, at=int(self._clock()), ttl=DELETED_REFUSED_FOR)
        ended = await self._end_access(client_id, ip=ip)
        await self._registry.forget(client_id)
        if not stays_disabled:
            await self._index.remove_client(client_id)
        self._audit.record("client_deleted", ip=ip, client_id=client_id, token_fp=by, reason=_summary(ended))
        return ClientChange(client_id=client_id, disabled=stays_disabled, deleted=True, ended=ended)

    async def _must_exist(self, client_id: str) -> None:
        if looks_like_metadata_url(client_id) or await self._registry.known(client_id) is not None:
            return
        if await self._registry.disabled.is_disabled(client_id) or await self._index.users_of(client_id):
            return
        raise NoSuchThing(f"no client {client_id!r} is known here")

    async def _end_access(self, client_id: str, *, ip: str) -> Ended:
        """Every grant of every user of the client, and its machine tokens."""
        grants = live = 0
        for subject in await self._index.users_of(client_id):
            revoked = await self._apps.revoke(subject, client_id, reason=f"app revoked {REASON}", ip=ip)
            grants, live = grants + revoked.grants, live + revoked.live_tokens
        machine_tokens = await self._index.machine_tokens(client_id)
        if machine_tokens:
            ended = await self._store.delete(*machine_tokens)
            live += ended
            self._audit.record(
                "grants_revoked",
                ip=ip,
                client_id=client_id,
                subject=MACHINE_SUBJECT_PREFIX + client_id,
                reason=f"client_credentials tokens ended {REASON} ({ended} live)",
            )
        await self._index.forget_machine_tokens(client_id)
        return Ended(grants=grants, live_tokens=live)

    # -- grants ----------------------------------------------------------------------------

    async def grants(self, *, subject: str | None, client_id: str | None) -> GrantList:
        """The live grants of a user, of a client, or of one user and one client."""
        found: list[GrantRecord] = []
        for user, client in await self._pairs(subject, client_id):
            found += await self._apps.grants_of(user, client)
        found.sort(key=lambda grant: (grant.subject, grant.client_id, grant.created_at))
        return GrantList(grants=[GrantView.of(grant) for grant in found])

    async def revoke_grants(self, *, subject: str | None, client_id: str | None, by: str, ip: str) -> Ended:
        """End what a user authorized (every app: grants, tokens, remembered consent), what a
        client holds (every user's, and its machine tokens), or both of one pair."""
        grants = live = 0
        for user, client in await self._pairs(subject, client_id):
            revoked = await self._apps.revoke(user, client, reason=f"app revoked {REASON}", ip=ip)
            grants, live = grants + revoked.grants, live + revoked.live_tokens
        if client_id is not None and subject is None:
            machine = await self._end_access(client_id, ip=ip)  # its users are done: machine tokens
            live += machine.live_tokens
        ended = Ended(grants=grants, live_tokens=live)
        self._audit.record(
            "grants_revoked", ip=ip, client_id=client_id, subject=subject, token_fp=by, reason=_summary(ended)
        )
        return ended

    async def revoke_grant(self, grant_id: str, *, by: str, ip: str) -> Ended:
        try:
            grant = await self._grants.get(grant_id)
        except ValueError:  # not an id we could have made (empty, braces: no hash tag)
            grant = None
        if grant is None:
            raise NoSuchThing(f"no live grant {grant_id!r}")
        live = await self._grants.revoke(grant_id)
        ended = Ended(grants=1, live_tokens=live)
        self._audit.record(
            "grants_revoked",
            ip=ip,
            client_id=grant.client_id,
            subject=grant.subject,
            grant_id=grant_id,
            token_fp=by,
            reason=_summary(ended),
        )
        return ended

    async def _pairs(self, subject: str | None, client_id: str | None) -> list[tuple[str, str]]:
        if subject is not None and client_id is not None:
            return [(subject, client_id)]
        if subject is not None:
            return [(subject, app.client_id) for app in await self._apps.of_user(subject)]
        if client_id is not None:
            return [(user, client_id) for user in await self._index.users_of(client_id)]
        raise NotAllowed("name a user (subject), a client (client_id), or both")

    # -- signing keys ----------------------------------------------------------------------

    async def keys(self) -> KeyList:
        try:
            return KeyList(keys=await self._keys.describe())
        except SigningKeyError as exc:
            raise NotAllowed(str(exc)) from None

    async def rotate_key(self, *, by: str, ip: str) -> RotatedKey:
        """A new key signs from now on; the old one stays published for ACCESS_TOKEN_TTL."""
        try:
            if self._token_format != "jwt" and not await self._keys.describe():  # noqa: S105 - a format
                raise NotAllowed(
                    "TOKEN_FORMAT is opaque and no JWT signing key was ever made: none to rotate"
                )
            kid = await self._keys.rotate()
            keys = await self._keys.describe()
        except SigningKeyError as exc:
            raise NotAllowed(str(exc)) from None
        self._audit.record("signing_key_rotated", ip=ip, token_fp=by, reason=f"key {kid} signs from now on")
        return RotatedKey(kid=kid, keys=keys)

    # -- purge -----------------------------------------------------------------------------

    async def purge(self, *, after: str | None, limit: int, by: str, ip: str) -> PurgeReport:
        """Remove what has expired or ended but is still held, one page of `limit` listed clients
        at a time (`after`: the previous page's `next`):

        * the store's expired keys, on the first page (`Store.drop_expired`: the memory store's;
          Redis expires keys itself);
        * per listed client and user: index entries of grants that ended, of apps that hold
          nothing, and the tokens each live grant still remembers but that expired or were
          consumed (a grant refreshed every hour for months remembers thousands);
        * clients listed but gone (a deleted registration, a document no grant refers to).
        Nothing that lives is touched: no registration is deleted, however long unused."""
        expired = await self._store.drop_expired() if after is None else 0
        listed = await self._index.clients()
        page = [client_id for client_id in listed if after is None or client_id > after][:limit]
        pruned = token_entries = 0
        for client_id in page:
            for subject in await self._index.users_of(client_id):
                pruned += await self._apps.tidy(subject, client_id)
                for grant in await self._apps.grants_of(subject, client_id):
                    token_entries += await self._grants.prune(grant.grant_id)
            if await self._listed_for_nothing(client_id):
                await self._index.remove_client(client_id)
                pruned += 1
        report = PurgeReport(
            expired_removed=expired,
            clients_checked=len(page),
            index_entries_pruned=pruned,
            grant_token_entries_pruned=token_entries,
            next=page[-1] if page and page[-1] != listed[-1] else None,
        )
        self._audit.record(
            "store_purged",
            ip=ip,
            token_fp=by,
            reason=f"{expired} expired, {pruned} index entries, {token_entries} grant token entries, "
            f"{len(page)} clients checked",
        )
        return report

    async def _listed_for_nothing(self, client_id: str) -> bool:
        if client_id in self._registry.configured or await self._index.users_of(client_id):
            return False
        if await self._registry.disabled.is_disabled(client_id):
            return False
        return await self._registry.known(client_id) is None


def _summary(ended: Ended) -> str:
    return f"{ended.grants} grants, {ended.live_tokens} live tokens ended"
