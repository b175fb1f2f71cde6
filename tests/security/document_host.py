"""A web host an attacker controls, for client ID metadata document attacks.

Serves whatever a test puts at a fresh path, over real HTTP on 127.0.0.1 (`live_server`), and
counts the requests each path gets, so "no fetch" and "one fetch" are observed, not assumed; the
headers of each request are kept too (what a fetch tells the host).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class DocumentHost:
    """Serves whatever a test puts at a fresh path, over real HTTP on 127.0.0.1, and counts requests.

    The authorization servers run with CIMD_ALLOW_LOOPBACK (the integration fixtures set it), so
    these URLs are valid client IDs; every other loopback spelling and address stays refused.
    """

    def __init__(self) -> None:
        self.base_url = ""
        self._documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self._hits: Counter[str] = Counter()
        self._headers: dict[str, list[dict[str, str]]] = {}
        self._lock = threading.Lock()

    def serve(
        self,
        body: bytes | Callable[[str], bytes],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        """A new URL answering `body` (or `body(url)`, for documents that must name their own URL)."""
        path = f"/{uuid.uuid4().hex}/client.json"
        url = self.base_url + path
        with self._lock:
            self._documents[path] = (status, body(url) if callable(body) else body, headers or {})
        return url

    def client_document(self, *, headers: dict[str, str] | None = None, **overrides: Any) -> str:
        """A new URL serving a valid public client's metadata document, with `overrides`."""

        def document(url: str) -> bytes:
            fields = {
                "client_id": url,
                "client_name": "Document client",
                "redirect_uris": ["http://127.0.0.1:53124/callback"],
                "token_endpoint_auth_method": "none",
                **overrides,
            }
            return json.dumps(fields).encode()

        return self.serve(document, headers=headers)

    def replace(self, url: str, body: bytes) -> None:
        """Answer `body` at `url` from now on (a key set rotated, a document edited)."""
        path = urlsplit(url).path
        with self._lock:
            status, _, headers = self._documents[path]
            self._documents[path] = (status, body, headers)

    def hits(self, url: str) -> int:
        with self._lock:
            return self._hits[urlsplit(url).path]

    def headers(self, url: str) -> list[dict[str, str]]:
        """The headers of every request `url` got, lower-case names."""
        with self._lock:
            return list(self._headers.get(urlsplit(url).path, []))

    def app(self, base_url: str) -> Starlette:
        self.base_url = base_url
        return Starlette(routes=[Route("/{token}/client.json", self._answer)])

    async def _answer(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            self._hits[path] += 1
            self._headers.setdefault(path, []).append(dict(request.headers))
            status, body, headers = self._documents.get(path, (404, b'{"error": "not found"}', {}))
        return Response(body, status_code=status, headers=headers, media_type="application/json")
