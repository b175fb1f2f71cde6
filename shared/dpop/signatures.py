"""Proof signatures asked for in one event-loop turn are checked together, back to back.

Why: a proof's signature check (P-256 in OpenSSL, through `cryptography`) is most of what DPoP
costs a request, and it is dearer when it runs cold. Measured in the benchmark server on this
project's machine: the first check after a request's own Python work took ~89 us, a second check
straight after it ~63 us (`openssl speed ecdsap256`'s figure), because the interpreter's work in
between evicts OpenSSL's code and tables from the CPU's caches. Under load, requests arrive
several to a turn (7.5 on average at 16 and 64 connections); checking their signatures one after
the other keeps the second and later checks warm (docs/performance.md, "DPoP").

What it costs: each waiting request resumes one loop turn later, and a request alone in its turn
pays for one future. Nothing is shared between requests but the order of the work: every check
answers only for its own proof, a check that raises fails only its own request, and a request
cancelled while it waits is skipped.

Written here: asyncio has no "run these callables together at the end of this turn" primitive,
and a thread pool would not help (each check would wait for the event loop to release the GIL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_Check = tuple[Callable[[], bool], "asyncio.Future[bool]"]


class BackToBack:
    """`await check(signature_valid)`: the answer of `signature_valid()`, run with the other
    checks of this loop turn in one callback."""

    def __init__(self) -> None:
        # The batch still open for new checks and the loop that will run it; a batch belongs to
        # one loop, so a verifier that outlives its loop (tests) starts a new one on the next.
        self._open: tuple[asyncio.AbstractEventLoop, list[_Check]] | None = None

    async def check(self, signature_valid: Callable[[], bool]) -> bool:
        loop = asyncio.get_running_loop()
        if self._open is None or self._open[0] is not loop:
            self._open = (loop, [])
            loop.call_soon(self._run, self._open[1])
        waiting: asyncio.Future[bool] = loop.create_future()
        self._open[1].append((signature_valid, waiting))
        return await waiting

    def _run(self, batch: list[_Check]) -> None:
        if self._open is not None and self._open[1] is batch:
            self._open = None  # checks asked for from now on form the next batch
        for signature_valid, waiting in batch:
            if waiting.done():  # its request was cancelled while it waited
                continue
            try:
                waiting.set_result(signature_valid())
            except Exception as error:  # a bug in one check fails that request alone
                waiting.set_exception(error)
