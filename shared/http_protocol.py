"""uvicorn's HTTP protocol with a deadline for request headers (slowloris).

uvicorn closes a connection that stays idle after a response (its keep-alive timeout), but any
byte cancels that timer, and nothing bounds how long a request's headers may take: a connection
that sends half a request line, or a header line every few seconds, stays open for good. A few
thousand of them use up the process's file descriptors, and everyone else is refused. Here a
connection must complete each request's headers within HEADER_TIMEOUT seconds of being opened or
of its previous response; otherwise it is closed. A request whose headers arrived is never cut
short (its body and its response take as long as the application lets them).

`python -m mcp_server` and `python -m auth_server` serve with it (shared/runtime.py), one process
or several workers alike (uvicorn imports the class by name in each worker). A reverse proxy in
front does the same again (docs/security.md).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT = 10.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol, closing a connection whose request headers are not complete in time."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: no pipelined request is waiting, the next one's
        # headers are still to come (a pipelined one's arrived already).
        if self.timeout_keep_alive_task is not None:
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

    def _stop_waiting(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
