"""Small ASGI helpers the protection layers share: canned responses and a bounded body buffer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import Message, Receive, Send

Headers = list[tuple[bytes, bytes]]

# Where `ScopeCheck` leaves the JSON-RPC message it parsed (scope["state"]), so that the layers
# after it (`mcp_server.responses`) read the same decoded body instead of parsing it again.
JSONRPC_MESSAGE_STATE_KEY = "mcpref.jsonrpc_message"


class CannedResponse:
    """A response whose bytes are built once (hot path: challenges are sent without formatting)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.status = status
        self.body = json.dumps(body, separators=(",", ":")).encode()
        self.headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"cache-control", b"no-store"),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
        ]

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def jsonrpc_error(message: str, code: int = -32600) -> dict[str, Any]:
    """A JSON-RPC error object with no id, the shape MCP uses for transport-level refusals."""
    return {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}


class BufferedBody:
    """Reads a request body up to `limit` bytes and replays it to the next application."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._messages: list[Message] = []
        self.body = b""

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or None once it exceeds `limit` (what was read is still replayed)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            self._messages.append(message)
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self.body = b"".join(chunks)
        return self.body

    async def receive(self) -> Message:
        if self._messages:
            return self._messages.pop(0)
        return await self._receive()
