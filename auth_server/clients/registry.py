"""The client registry: every client the authorization server knows, wherever it came from.

Lookup order for a client_id:
1. pre-registered clients from configuration (AUTH_CLIENTS, plus, on the standalone server of
   external mode, the MCP server's own introspection client), validated once at start-up so a
   typo stops the process;
2. dynamically registered clients (RFC 7591), stored under `auth:client:{client_id}`. Anyone may
   register, so a registration no user has authorized yet is kept only REGISTRATION_UNUSED_TTL
   seconds, and at most MAX_UNUSED_REGISTRATIONS of those at once (one more deletes the oldest
   unused one). The first authorization code a signed-in user approves for it (`keep`) keeps it
   until an administrator deletes it;
3. client ID metadata documents: a URL client_id is fetched and validated (and cached) by
   `clients/documents.py`.

Secrets from configuration are kept only as `crypto.digest` values.

Any client_id, whatever its source, can be disabled by an administrator (`DisabledClients`, the
admin API): it then resolves to nothing, so it neither authenticates nor starts an authorization,
and no metadata document is fetched for it.

The standalone server of external mode also pre-registers the MCP server's delegation credential
when TOKEN_EXCHANGE_AUDIENCES is set (TOKEN_EXCHANGE_CLIENT_*): it may only exchange a caller's
token for a downstream API's (`grants/token_exchange.py`).

Two kinds of configured clients never obtain a token for a user, and they are kept apart:
* a resource server's credential (`may_introspect`: INTROSPECTION_CLIENT_*, or an AUTH_CLIENTS
  entry flagged so) only introspects: no grant, no redirect URI, no scope. It exists where a
  separate resource server introspects; internal mode's MCP server reads the Store itself, so
  there the built-in one does not exist at all;
* a machine client (`client_credentials`) gets tokens for itself, never beyond the `scope` it is
  configured with, which is therefore required.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from auth_server import crypto
from auth_server.clients.documents import ClientMetadataDocumentError, ClientMetadataDocuments
from auth_server.clients.metadata import ClientMetadataRejected, parse_client_metadata
from auth_server.grants.index import REGISTERED_LISTED_FOR, GrantIndex
from auth_server.models import Client, looks_like_metadata_url
from shared.oauth import TOKEN_EXCHANGE_GRANT
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import UNUSED_CLIENTS_KEY, client_key, disabled_client_key, metadata_document_key


class UnknownClient(Exception):
    """No usable client for this client_id; the message says why (fit for the error page)."""


class DisabledClients:
    """Client_ids an administrator disabled, under `auth:client-disabled:{digest(client_id)}`.

    In the Store, so every instance refuses the client from its next request on, and it survives
    restarts (a configured client too: enable it again, or it stays disabled). `ttl` makes a
    short-lived refusal: a deleted client's, which only has to outlast the token requests that
    were in flight when it was deleted."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def disable(self, client_id: str, *, at: int, ttl: float | None = None) -> None:
        await self._store.set(disabled_client_key(client_id), str(at), ttl=ttl)

    async def enable(self, client_id: str) -> bool:
        """False if it was not disabled."""
        return await self._store.delete(disabled_client_key(client_id)) > 0

    async def disabled_at(self, client_id: str) -> int | None:
        raw = await self._store.get(disabled_client_key(client_id))
        return int(raw) if raw is not None and raw.isdigit() else None

    async def is_disabled(self, client_id: str) -> bool:
        return await self._store.get(disabled_client_key(client_id)) is not None

    async def disabled_for_good(self, client_id: str) -> bool:
        """Disabled until enabled again (not merely for a moment after a deletion)."""
        key = disabled_client_key(client_id)
        return await self._store.get(key) is not None and await self._store.ttl(key) is None


class StoreClientRegistry:
    """The `ClientRegistry` of this server (see module docstring for the lookup order)."""

    def __init__(
        self,
        store: Store,
        documents: ClientMetadataDocuments,
        *,
        configured: Mapping[str, Client] | None = None,
        native_schemes: Collection[str] = (),
        unused_ttl: int,
        max_unused: int,
    ) -> None:
        self._store = store
        # How long, and how many, registrations no user has authorized yet are kept (`add`).
        self._unused_ttl = unused_ttl
        self._max_unused = max_unused
        # Private-use redirect URI schemes native clients may use (NATIVE_REDIRECT_SCHEMES).
        self.native_schemes = frozenset(native_schemes)
        self._preregistered = dict(configured or {})
        self._documents = documents
        self.disabled = DisabledClients(store)

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> StoreClientRegistry:
        """The configured clients are checked here: a bad AUTH_CLIENTS entry is a ValueError."""
        return cls(
            store,
            ClientMetadataDocuments.from_settings(settings, store),
            configured=preregistered_clients(settings),
            native_schemes=settings.native_redirect_schemes,
            unused_ttl=settings.registration_unused_ttl,
            max_unused=settings.max_unused_registrations,
        )

    async def get(self, client_id: str) -> Client | None:
        """The client, or None when unknown or its metadata document is unusable."""
        try:
            return await self.resolve(client_id)
        except UnknownClient:
            return None

    async def known(self, client_id: str) -> Client | None:
        """The client if it is known without fetching anything: configured, registered, or a
        metadata document still cached (None otherwise, e.g. a document not fetched lately)."""
        if client_id in self._preregistered:
            return self._preregistered[client_id]
        if looks_like_metadata_url(client_id):
            return await self._documents.cached(client_id)
        return await self._registered(client_id)

    async def resolve(self, client_id: str, *, requester: str | None = None) -> Client:
        """The client, or UnknownClient explaining why there is none. `requester` is the client
        address asking (for the per-address limit on metadata document fetches), if known."""
        if await self.disabled.is_disabled(client_id):
            raise UnknownClient("this client is disabled")
        if client_id in self._preregistered:
            return self._preregistered[client_id]
        if looks_like_metadata_url(client_id):
            try:
                return await self._documents.get(client_id, requester=requester)
            except ClientMetadataDocumentError as exc:
                raise UnknownClient(str(exc)) from None
        client = await self._registered(client_id)
        if client is None:
            raise UnknownClient("this client is not registered")
        return client

    async def _registered(self, client_id: str) -> Client | None:
        client = await records.read(self._store, client_key(client_id), Client)
        if client is None:
            return None
        if client.source != "dynamic" or client.may_introspect:
            # Only configuration makes a machine client or a resource server; a stored record
            # claiming to be one (written by hand, or by an older version) is held to DCR's rules.
            client = client.model_copy(update={"source": "dynamic", "may_introspect": False})
        return client

    async def add(self, client: Client) -> bool:
        """Store a dynamically registered client, unused (it expires unless `keep` is called in
        time), and list it for administrators; False if the client_id is already taken."""
        if client.client_id in self._preregistered:
            return False
        added = await records.write(
            self._store, client_key(client.client_id), client, ttl=self._unused_ttl, only_if_absent=True
        )
        if not added:
            return False
        await GrantIndex(self._store).add_client(client.client_id, self._unused_ttl)
        evicted = await self._store.index_add(
            UNUSED_CLIENTS_KEY, client.client_id, self._unused_ttl, limit=self._max_unused
        )
        for oldest in evicted:  # registrations nobody used: never a kept one (`keep` unlists first)
            await self._store.delete(client_key(oldest))
            await GrantIndex(self._store).remove_client(oldest)
        return True

    async def keep(self, client_id: str) -> None:
        """A signed-in user authorized this client: if it is a registration not used before, keep
        it until it is deleted. One Store call for every other client (and every later use)."""
        if await self._store.index_remove(UNUSED_CLIENTS_KEY, client_id) == 0:
            return
        # "Until deleted" is a very long expiry: a Store has no "persist".
        if await self._store.expire(client_key(client_id), REGISTERED_LISTED_FOR):
            await GrantIndex(self._store).add_client(client_id)

    @property
    def configured(self) -> dict[str, Client]:
        """The clients from configuration (AUTH_CLIENTS, the introspection client), by client_id."""
        return dict(self._preregistered)

    async def forget(self, client_id: str) -> bool:
        """Delete a dynamically registered client, or drop a cached metadata document (it is
        fetched again on its next use); False if neither was there. Configured clients stay."""
        if looks_like_metadata_url(client_id):
            return await self._store.delete(metadata_document_key(client_id)) > 0
        await self._store.index_remove(UNUSED_CLIENTS_KEY, client_id)
        return await self._store.delete(client_key(client_id)) > 0


def preregistered_clients(settings: Settings) -> dict[str, Client]:
    """Clients from configuration, keyed by client_id; ValueError names the bad entry."""
    clients = {}
    for index, entry in enumerate(settings.auth_clients):
        client = _configured_client(
            entry, where=f"AUTH_CLIENTS[{index}]", native_schemes=settings.native_redirect_schemes
        )
        if client.client_id in clients:
            raise ValueError(f"AUTH_CLIENTS[{index}]: duplicate client_id {client.client_id!r}")
        clients[client.client_id] = client
    if settings.auth_mode == "external":
        introspection = introspection_client(settings)
        if introspection.client_id in clients:
            raise ValueError(
                f"AUTH_CLIENTS: client_id {introspection.client_id!r} is the introspection client's"
            )
        clients[introspection.client_id] = introspection
        if settings.token_exchange_audiences:
            delegate = delegation_client(settings)
            if delegate.client_id in clients:
                raise ValueError(
                    f"AUTH_CLIENTS: client_id {delegate.client_id!r} is the token exchange client's"
                )
            clients[delegate.client_id] = delegate
    return clients


def introspection_client(settings: Settings) -> Client:
    """The MCP server's own credential on the standalone server (external mode): it introspects
    and does nothing else."""
    return resource_server_client(
        settings.introspection_client_id,
        crypto.digest(settings.introspection_client_secret),
        name="MCP resource server (introspection)",
    )


def delegation_client(settings: Settings) -> Client:
    """The MCP server's delegation credential on the standalone server (external mode with
    TOKEN_EXCHANGE_AUDIENCES): it exchanges its callers' tokens (RFC 8693) and does nothing else."""
    assert settings.token_exchange_client_secret is not None, "checked by Settings"
    return Client(
        client_id=settings.token_exchange_client_id,
        client_name="MCP server (token exchange)",
        grant_types=(TOKEN_EXCHANGE_GRANT,),
        response_types=(),
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name, not a secret
        client_secret_digest=crypto.digest(settings.token_exchange_client_secret),
        application_type="web",
        source="preregistered",
    )


def resource_server_client(client_id: str, secret_digest: str, *, name: str | None = None) -> Client:
    """A resource server's credential: may call /introspect, may use no grant (`may_use_grant`)."""
    return Client(
        client_id=client_id,
        client_name=name,
        grant_types=(),
        response_types=(),
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name, not a secret
        client_secret_digest=secret_digest,
        application_type="web",
        source="preregistered",
        may_introspect=True,
    )


# What a resource server's entry may not have: it only introspects.
_NOT_FOR_RESOURCE_SERVERS = ("grant_types", "response_types", "redirect_uris", "scope")


def _configured_client(entry: Mapping[str, Any], *, where: str, native_schemes: Collection[str]) -> Client:
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id or looks_like_metadata_url(client_id):
        raise ValueError(f"{where}: client_id must be a non-empty string that is not a URL")
    secret = entry.get("client_secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
        raise ValueError(f"{where}: client_secret must be a string of at least 16 characters")
    may_introspect = entry.get("may_introspect", False)
    if not isinstance(may_introspect, bool):
        raise ValueError(f"{where} ({client_id}): may_introspect must be true or false")
    if may_introspect:
        extra = [name for name in _NOT_FOR_RESOURCE_SERVERS if entry.get(name)]
        if extra:
            raise ValueError(
                f"{where} ({client_id}): a resource server's client (may_introspect) only introspects; "
                f"remove {', '.join(extra)} (configure a separate client for tokens)"
            )
        if not secret:
            raise ValueError(f"{where} ({client_id}): a resource server's client needs a client_secret")
        name = entry.get("client_name")
        return resource_server_client(
            client_id, crypto.digest(secret), name=name if isinstance(name, str) else None
        )
    try:
        metadata = parse_client_metadata(
            entry,
            default_auth_method="client_secret_basic" if secret else "none",
            native_schemes=native_schemes,
            machine_client_allowed=True,
            key_auth_allowed=True,
        )
    except ClientMetadataRejected as exc:
        raise ValueError(f"{where} ({client_id}): {exc.error}: {exc.description}") from None
    uses_secret = metadata.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post")
    if uses_secret and not secret:
        raise ValueError(f"{where} ({client_id}): a confidential client needs a client_secret")
    if not uses_secret and secret:
        raise ValueError(
            f"{where} ({client_id}): a client authenticating with {metadata.token_endpoint_auth_method} "
            "has no client_secret"
        )
    if "client_credentials" in metadata.grant_types and not metadata.scope:
        raise ValueError(
            f"{where} ({client_id}): a client_credentials client needs an explicit scope, the most "
            'its tokens may carry (for example "scope": "mcp:tools:read notes:read")'
        )
    return metadata.to_client(
        client_id, "preregistered", client_secret_digest=crypto.digest(secret) if secret else None
    )
