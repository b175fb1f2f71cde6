"""The client registry: every client the authorization server knows, wherever it came from.

Lookup order for a client_id:
1. pre-registered clients from configuration (AUTH_CLIENTS, plus the MCP server's own
   introspection client), validated once at start-up so a typo stops the process;
2. dynamically registered clients (RFC 7591), stored under `auth:client:{client_id}` without
   expiry;
3. client ID metadata documents: a URL client_id is fetched and validated (and cached) by
   `endpoints.client_metadata`.

Secrets from configuration are kept only as `crypto.digest` values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from auth_server import crypto
from auth_server.client_validation import ClientMetadataRejected, parse_client_metadata
from auth_server.endpoints.client_metadata import (
    ClientMetadataDocumentError,
    ClientMetadataDocuments,
    looks_like_metadata_url,
)
from auth_server.models import Client
from shared.settings import Settings
from shared.storage.base import Store


class UnknownClient(Exception):
    """No usable client for this client_id; the message says why (fit for the error page)."""


def client_key(client_id: str) -> str:
    return f"auth:client:{client_id}"


class StoreClientRegistry:
    """The `ClientRegistry` of this server (see module docstring for the lookup order)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        metadata_documents: ClientMetadataDocuments | None = None,
    ) -> None:
        self._store = store
        # Private-use redirect URI schemes native clients may use (NATIVE_REDIRECT_SCHEMES).
        self.native_schemes = frozenset(settings.native_redirect_schemes)
        self._preregistered = preregistered_clients(settings)
        self._documents = metadata_documents or ClientMetadataDocuments(settings, store)

    async def get(self, client_id: str) -> Client | None:
        """The client, or None when unknown or its metadata document is unusable."""
        try:
            return await self.resolve(client_id)
        except UnknownClient:
            return None

    async def resolve(self, client_id: str) -> Client:
        """The client, or UnknownClient explaining why there is none."""
        if client_id in self._preregistered:
            return self._preregistered[client_id]
        if looks_like_metadata_url(client_id):
            try:
                return await self._documents.get(client_id)
            except ClientMetadataDocumentError as exc:
                raise UnknownClient(str(exc)) from None
        stored = await self._store.get(client_key(client_id))
        if stored is None:
            raise UnknownClient("this client is not registered")
        return Client.model_validate_json(stored)

    async def add(self, client: Client) -> bool:
        """Store a dynamically registered client; False if the client_id is already taken."""
        if client.client_id in self._preregistered:
            return False
        return await self._store.set(
            client_key(client.client_id), client.model_dump_json(), only_if_absent=True
        )


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
    introspection = introspection_client(settings)
    if introspection.client_id in clients:
        raise ValueError(f"AUTH_CLIENTS: client_id {introspection.client_id!r} is the introspection client's")
    clients[introspection.client_id] = introspection
    return clients


def introspection_client(settings: Settings) -> Client:
    """The MCP server's own client: may only call /introspect and get client_credentials tokens."""
    return Client(
        client_id=settings.introspection_client_id,
        client_name="MCP resource server (introspection)",
        grant_types=("client_credentials",),
        response_types=(),
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name, not a secret
        client_secret_digest=crypto.digest(settings.introspection_client_secret),
        application_type="web",
        source="preregistered",
        may_introspect=True,
    )


def _configured_client(entry: Mapping[str, Any], *, where: str, native_schemes: Collection[str]) -> Client:
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id or looks_like_metadata_url(client_id):
        raise ValueError(f"{where}: client_id must be a non-empty string that is not a URL")
    secret = entry.get("client_secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
        raise ValueError(f"{where}: client_secret must be a string of at least 16 characters")
    try:
        metadata = parse_client_metadata(
            entry,
            default_auth_method="client_secret_basic" if secret else "none",
            native_schemes=native_schemes,
        )
    except ClientMetadataRejected as exc:
        raise ValueError(f"{where} ({client_id}): {exc.error}: {exc.description}") from None
    if not metadata.is_public and not secret:
        raise ValueError(f"{where} ({client_id}): a confidential client needs a client_secret")
    if metadata.is_public and secret:
        raise ValueError(f"{where} ({client_id}): a public client (auth method none) has no secret")
    return metadata.to_client(
        client_id,
        "preregistered",
        client_secret_digest=crypto.digest(secret) if secret else None,
        may_introspect=bool(entry.get("may_introspect", False)),
    )
