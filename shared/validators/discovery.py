"""An authorization server's endpoints, found from its issuer: RFC 8414, else OpenID discovery.

The MCP server is told only the issuer it trusts (AUTH_SERVER_URL); where that server publishes
its signing keys (`jwks_uri`) and answers introspection (`introspection_endpoint`) is read from
its metadata, so the bundled authorization server and any third-party provider are configured
the same way. Documents are tried in this order:

1. RFC 8414 section 3.1, path-inserted: `https://h/.well-known/oauth-authorization-server/tenant`;
2. OpenID Connect Discovery 1.0 section 4, path-appended: `https://h/tenant/.well-known/openid-configuration`
   (the only one many OpenID providers serve).

A document counts only when its `issuer` equals the configured issuer byte for byte (RFC 8414
section 3.3, OpenID Discovery section 4.3): a document that names another issuer would make us
trust that issuer's keys. The first good document is kept for `refresh_after` seconds (a failed
refresh keeps it); when none is good the caller gets `ValidatorUnavailable` (503), and further
attempts wait `retry_after` seconds, so a broken provider is not asked on every request. Until a
good document has been seen, `/readyz` says why (`readiness_probe`), and the log names the
setting that decides the issuer.

Endpoint URLs under the public issuer are rewritten to `back_channel_base` when the MCP server
reaches the provider at another address (AUTH_ISSUER_URL differs from AUTH_SERVER_URL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2

from shared import tracing, untrusted_json
from shared.health import ReadinessProbe
from shared.retry_after import UNAVAILABLE
from shared.settings import Settings
from shared.validation import ValidatorUnavailable

logger = logging.getLogger(__name__)

RFC8414_SUFFIX = "oauth-authorization-server"
OPENID_SUFFIX = "openid-configuration"
_MAX_DOCUMENT_BYTES = 256 * 1024


def discovery_urls(issuer: str, base_url: str | None = None) -> tuple[str, str]:
    """Where to look for the metadata of `issuer`, fetched from `base_url` (default: the issuer)."""
    path = urlsplit(issuer).path.rstrip("/")
    origin = urlsplit(base_url or issuer)
    root = f"{origin.scheme}://{origin.netloc}"
    return (
        f"{root}/.well-known/{RFC8414_SUFFIX}{path}",
        f"{root}{path}/.well-known/{OPENID_SUFFIX}",
    )


class ProviderMetadata:
    """The metadata document of one trusted issuer, discovered once and shared by the validators.

    It holds no HTTP client of its own: each call uses the caller's (so timeouts, connection pools
    and test transports stay the caller's decision).
    """

    def __init__(
        self,
        *,
        issuer: str,
        back_channel_base: str | None = None,
        urls: Sequence[str] | None = None,
        refresh_after: float = 3600.0,
        retry_after: int = UNAVAILABLE,
        clock: Callable[[], float] = time.monotonic,
        issuer_setting: str = "AUTH_SERVER_URL",
    ) -> None:
        self.issuer = issuer
        self.issuer_setting = issuer_setting  # named in log lines: what an operator changes
        self.problem: str | None = None  # why the last discovery found nothing usable
        self._back_channel_base = back_channel_base if back_channel_base != issuer else None
        self.urls = tuple(urls) if urls else discovery_urls(issuer, back_channel_base)
        self._refresh_after = refresh_after
        self._retry_after = retry_after
        self._clock = clock
        self._document: dict[str, Any] | None = None
        self._fetched_at = float("-inf")
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0  # documents requested (observability and tests)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderMetadata:
        return cls(
            issuer=settings.issuer,
            back_channel_base=settings.auth_server_base_url,
            issuer_setting=settings.issuer_setting,
        )

    def readiness_probe(self, *, timeout: float) -> ReadinessProbe:
        """For /readyz: None once a usable document is held, else why there is none."""

        async def probe() -> str | None:
            if self._document is not None:
                return None
            async with tracing.http_client(trusted_peer=True, timeout=timeout) as client:
                try:
                    await self.document(client)
                except ValidatorUnavailable:
                    return self.problem or "authorization server metadata unavailable"
            return None

        return probe

    async def document(self, client: httpx2.AsyncClient) -> Mapping[str, Any]:
        """The metadata, fetched when missing or old; `ValidatorUnavailable` when there is none."""
        now = self._clock()
        if self._document is not None and now - self._fetched_at < self._refresh_after:
            return self._document
        async with self._lock:
            now = self._clock()
            if self._document is not None and now - self._fetched_at < self._refresh_after:
                return self._document
            if now - self._failed_at < self._retry_after:
                if self._document is not None:
                    return self._document
                raise ValidatorUnavailable("authorization server metadata unavailable", self._retry_after)
            document = await self._discover(client)
            if document is None:
                self._failed_at = now
                if self._document is not None:
                    logger.warning("metadata refresh for %s failed; keeping the cached document", self.issuer)
                    return self._document
                raise ValidatorUnavailable("authorization server metadata unavailable", self._retry_after)
            self._document, self._fetched_at, self.problem = document, now, None
            return document

    async def endpoint(self, client: httpx2.AsyncClient, name: str) -> str | None:
        """An endpoint URL from the metadata (None when not advertised), reachable from here."""
        value = (await self.document(client)).get(name)
        if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
            return None
        return self.back_channel(value)

    def back_channel(self, url: str) -> str:
        """`url` with the public issuer prefix replaced by the back-channel base, if one is set."""
        base = self._back_channel_base
        if base and (url == self.issuer or url.startswith(self.issuer + "/")):
            return base + url[len(self.issuer) :]
        return url

    async def _discover(self, client: httpx2.AsyncClient) -> dict[str, Any] | None:
        self.problem = (
            f"no authorization server metadata from {self.issuer_setting} ({self.issuer}; see the log)"
        )
        for url in self.urls:
            self.fetches += 1
            try:
                response = await client.get(url, headers={"Accept": "application/json"})
            except httpx2.HTTPError as exc:
                logger.warning("metadata at %s unreachable: %s", url, type(exc).__name__)
                continue
            if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT_BYTES:
                logger.info("no metadata at %s (HTTP %d)", url, response.status_code)
                continue
            try:
                document = untrusted_json.parse(response.content, max_bytes=_MAX_DOCUMENT_BYTES)
            except untrusted_json.UntrustedJsonError:
                document = None
            if not isinstance(document, dict):
                logger.warning("metadata at %s is not a JSON object", url)
                continue
            if document.get("issuer") != self.issuer:
                logger.error(
                    "metadata at %s names issuer %r, not %r (%s); ignored, so no token can be "
                    "checked: set %s to exactly the issuer that provider publishes if it is the one "
                    "you trust",
                    url,
                    str(document.get("issuer"))[:200],
                    self.issuer,
                    self.issuer_setting,
                    self.issuer_setting,
                )
                self.problem = (
                    f"the authorization server's metadata names another issuer than {self.issuer_setting}"
                )
                continue
            return document
        logger.warning(
            "no usable metadata for issuer %s (%s) at %s",
            *(self.issuer, self.issuer_setting, ", ".join(self.urls)),
        )
        return None
