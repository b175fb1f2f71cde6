"""Slow clients cannot hold connections for good (slowloris).

The attack: open a connection and send a request's headers slowly, a line every second, or half
a request line and then nothing. uvicorn bounded neither: such connections stayed open as long as
the attacker liked (tried for minutes), and a few thousand use up the file descriptors of a
server exposed without a proxy. Now each request's headers must arrive within HEADER_TIMEOUT
seconds (shared/http_protocol.py), and a request whose headers did arrive is answered as before.
The real processes of both modes (`python -m mcp_server`, `python -m auth_server`).
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import pytest

from shared.http_protocol import HEADER_TIMEOUT
from tests.e2e.fixtures import BOTH_MODES_MEMORY
from tests.e2e.servers import Deployment

pytestmark = pytest.mark.parametrize("deployment", BOTH_MODES_MEMORY, indirect=True)

# Past the deadline, with room for a busy machine; far below "for good".
CLOSED_WITHIN = HEADER_TIMEOUT + 20


async def closed_after(url: str, opening: bytes, *, trickle: bytes | None) -> float:
    """Send `opening`, then `trickle` every half second (or nothing); seconds until the server
    closes the connection. Fails if it is still open after CLOSED_WITHIN seconds."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    started = time.monotonic()
    try:
        writer.write(opening)
        await writer.drain()
        while time.monotonic() - started < CLOSED_WITHIN:
            try:
                chunk = await asyncio.wait_for(reader.read(1024), 0.5)
            except TimeoutError:
                if trickle is not None:
                    try:
                        writer.write(trickle)
                        await writer.drain()
                    except ConnectionError:
                        return time.monotonic() - started
                continue
            if not chunk:
                return time.monotonic() - started
            raise AssertionError(f"the server answered a request whose headers never ended: {chunk!r}")
        raise AssertionError(f"the connection was still open after {CLOSED_WITHIN} s")
    finally:
        writer.close()


def servers_of(deployment: Deployment) -> list[str]:
    urls = [deployment.base_url]
    if deployment.auth_port is not None:
        urls.append(f"http://127.0.0.1:{deployment.auth_port}")
    return urls


async def test_headers_sent_a_line_at_a_time_get_the_connection_closed(deployment: Deployment) -> None:
    for url in servers_of(deployment):
        await closed_after(url, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", trickle=b"X-Slow: 1\r\n")


async def test_half_a_request_line_and_then_silence_gets_the_connection_closed(
    deployment: Deployment,
) -> None:
    for url in servers_of(deployment):
        await closed_after(url, b"GET /heal", trickle=None)
        await closed_after(url, b"", trickle=None)  # a connection that never sends a byte


async def test_a_request_whose_headers_arrived_is_answered_and_the_connection_kept(
    deployment: Deployment,
) -> None:
    parts = urlsplit(deployment.base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        for _ in range(2):  # two requests on one keep-alive connection
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 10)) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
