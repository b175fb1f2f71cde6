"""Client ID Metadata Documents: a client_id that is an https URL names its own metadata.

Instead of registering, a client uses the URL of a JSON document it hosts as its client_id
(draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25 and later). This module turns
such a client_id into a `Client`:

* URL rules (CM-02): https, a path naming a document, no `.`/`..` segments, no fragment, no
  userinfo. Plain http is accepted only for loopback hosts and only with CIMD_ALLOW_LOOPBACK.
* The fetch itself is `fetch.fetch_document` (SSRF rules, DNS pinning, no redirects, size
  cap while streaming, one overall timeout).
* Document rules (CM-03, CM-05): a JSON object whose `client_id` equals the URL by plain string
  comparison, with `client_name` and `redirect_uris`; shared-secret authentication is refused
  (anyone can read the document, so it cannot hold or imply a secret), `private_key_jwt` with the
  client's public keys (`jwks` or `jwks_uri`, CIMD section 6.2) is accepted, and so is the
  enterprise assertion grant (jwt-bearer) for such a client. The rest goes through the same
  `parse_client_metadata` as registration.
* Caching (CM-08): valid documents only, under `auth:cimd:{digest(url)}`, for the document's
  `Cache-Control: max-age` capped at CIMD_CACHE_TTL (no header: CIMD_CACHE_TTL; `no-store` or
  `no-cache`: not cached). A failure's response or document is never cached (CIMD 4.4).

Anyone can make this server fetch a URL of their choosing, so fetches are bounded: a failed URL
is not fetched again for CIMD_FAILURE_TTL seconds (only the fact that it failed is remembered,
under `auth:cimd-failed:{digest(url)}`), and fetches are limited per URL
(FETCHES_PER_URL_PER_MINUTE: the AS is nobody's load generator) and per client address
(FETCHES_PER_ADDRESS_PER_MINUTE). And the answer never tells the requester what the network
said: every failure after the URL's own syntax (DNS, a refused or non-public address, a timeout,
a status, a redirect, the size, invalid JSON or metadata) is the one FAILED message, so the error
page is no port scanner (no "answered HTTP 404" next to "ConnectError"); the reason is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from urllib.parse import unquote, urlsplit

from auth_server import crypto
from auth_server.clients.fetch import (
    LOOPBACK_LITERALS,
    FetchRefused,
    Resolver,
    Target,
    fetch_document,
    parse_target,
    system_resolver,
)
from auth_server.clients.metadata import ClientMetadataRejected, parse_client_metadata
from auth_server.models import Client
from auth_server.rate_limit import RateLimiter
from shared import untrusted_json
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import metadata_document_failure_key, metadata_document_key

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2000
FETCHES_PER_URL_PER_MINUTE = 12
FETCHES_PER_ADDRESS_PER_MINUTE = 20
FAILED = (
    "the client metadata document could not be used: it could not be fetched, or it is not a "
    "valid client metadata document (the authorization server's log says which)"
)
SHARED_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


class ClientMetadataDocumentError(Exception):
    """The client_id URL or its document is unusable; the message is fit for the error page."""


def check_client_id_url(url: str) -> None:
    """CIMD section 3 URL rules that do not depend on DNS; raise ClientMetadataDocumentError."""
    if len(url) > MAX_URL_LENGTH or any(ch <= " " or ch in "\x7f\\" for ch in url):
        raise ClientMetadataDocumentError("the client_id URL is too long or contains forbidden characters")
    if "#" in url:
        raise ClientMetadataDocumentError("the client_id URL must not contain a fragment")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ClientMetadataDocumentError("the client_id URL must not contain userinfo")
    if parts.path in ("", "/"):
        raise ClientMetadataDocumentError("the client_id URL must have a path naming the document")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise ClientMetadataDocumentError("the client_id URL must not contain . or .. path segments")


def client_from_document(
    url: str, body: bytes, *, max_bytes: int, native_schemes: Collection[str] = ()
) -> Client:
    """Validate a fetched document (at most `max_bytes`) against its URL and turn it into a Client."""
    try:
        document = untrusted_json.parse(body, max_bytes=max_bytes)
    except untrusted_json.UntrustedJsonError as exc:
        raise ClientMetadataDocumentError(f"the client metadata document: {exc}") from None
    if not isinstance(document, dict):
        raise ClientMetadataDocumentError("the client metadata document must be a JSON object")
    if document.get("client_id") != url:
        raise ClientMetadataDocumentError("the document's client_id does not equal its URL")
    name = document.get("client_name")
    if not isinstance(name, str) or not name.strip():
        raise ClientMetadataDocumentError("the client metadata document has no client_name")
    if not document.get("redirect_uris"):
        raise ClientMetadataDocumentError("the client metadata document has no redirect_uris")
    if "client_secret" in document or document.get("token_endpoint_auth_method") in SHARED_SECRET_METHODS:
        raise ClientMetadataDocumentError("a client metadata document cannot use a shared secret")
    if document.get("token_endpoint_auth_method", "none") not in ("none", "private_key_jwt"):
        raise ClientMetadataDocumentError(
            'token_endpoint_auth_method must be "none" or "private_key_jwt" for a metadata document'
        )
    try:
        metadata = parse_client_metadata(
            document, default_auth_method="none", native_schemes=native_schemes, key_auth_allowed=True
        )
    except ClientMetadataRejected as exc:
        raise ClientMetadataDocumentError(
            f"the client metadata document is invalid: {exc.description}"
        ) from None
    return metadata.to_client(url, "metadata_document")


def cache_seconds(cache_control: str | None, cap: int) -> int:
    """How long a valid document may be cached: its max-age, at most `cap`; 0 means do not."""
    if cache_control is None:
        return cap
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return 0
    match = _MAX_AGE.search(cache_control)
    return min(int(match.group(1)), cap) if match else cap


class ClientMetadataDocuments:
    """Resolves metadata-document client IDs to Clients, with a bounded cache in the Store."""

    def __init__(
        self,
        store: Store,
        *,
        max_bytes: int,
        timeout: float,
        cache_ttl: int,
        failure_ttl: int,
        allow_loopback: bool = False,
        native_schemes: Collection[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._failure_ttl = failure_ttl
        self._allow_loopback = allow_loopback
        self._native_schemes = tuple(native_schemes)
        self._resolver = resolver
        self._per_url = RateLimiter(store, FETCHES_PER_URL_PER_MINUTE)
        self._per_address = RateLimiter(store, FETCHES_PER_ADDRESS_PER_MINUTE)

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, resolver: Resolver = system_resolver
    ) -> ClientMetadataDocuments:
        return cls(
            store,
            max_bytes=settings.cimd_max_bytes,
            timeout=settings.cimd_timeout,
            cache_ttl=settings.cimd_cache_ttl,
            failure_ttl=settings.cimd_failure_ttl,
            allow_loopback=settings.cimd_allow_loopback,
            native_schemes=settings.native_redirect_schemes,
            resolver=resolver,
        )

    async def cached(self, url: str) -> Client | None:
        """The client from a cached document, never fetching (for pages that list many apps)."""
        return await records.read(self._store, metadata_document_key(url), Client)

    async def get(self, url: str, *, requester: str | None = None) -> Client:
        """The client the document at `url` describes; raise ClientMetadataDocumentError, or
        RateLimited when `requester` (a client address, when known) or the URL has had its fetches."""
        check_client_id_url(url)
        try:
            target = parse_target(url)
        except FetchRefused as exc:  # the URL's own syntax: nothing was asked of the network
            raise ClientMetadataDocumentError(f"the client_id URL is not acceptable: {exc}") from None
        loopback_allowed = self._allow_loopback and target.host in LOOPBACK_LITERALS
        if target.scheme != "https" and not loopback_allowed:
            raise ClientMetadataDocumentError("the client_id URL must use https")
        cached = await self.cached(url)
        if cached is not None:
            return cached
        if await self._store.get(metadata_document_failure_key(url)) is not None:
            raise ClientMetadataDocumentError(FAILED)
        if requester is not None:
            await self._per_address.check_ip("cimd_fetch", requester)
        await self._per_url.check_ip("cimd_url", crypto.digest(url))
        try:
            client = await self._fetch(url, target)
        except (FetchRefused, ClientMetadataDocumentError) as exc:
            logger.info("client metadata document %s unusable: %s", url[:200], exc)
            if self._failure_ttl > 0:
                await self._store.set(metadata_document_failure_key(url), "1", ttl=self._failure_ttl)
            raise ClientMetadataDocumentError(FAILED) from None
        return client

    async def _fetch(self, url: str, target: Target) -> Client:
        document = await fetch_document(
            target,
            max_bytes=self._max_bytes,
            time_limit=self._timeout,
            allow_loopback=self._allow_loopback,
            resolver=self._resolver,
        )
        client = client_from_document(
            url,
            document.body,
            max_bytes=self._max_bytes,
            native_schemes=self._native_schemes,
        )
        ttl = cache_seconds(document.cache_control, self._cache_ttl)
        if ttl > 0:
            await records.write(self._store, metadata_document_key(url), client, ttl=ttl)
        return client
