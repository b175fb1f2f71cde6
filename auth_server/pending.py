"""Authorization requests waiting for the user to sign in and consent.

A validated /authorize request is kept server-side, so the login and consent forms carry only
an opaque request id and a CSRF token: nothing the browser posts can change the client, the
redirect URI, the scopes or the PKCE challenge that were checked. The record is stored under
`auth:pending:{digest(id)}` for PENDING_TTL seconds and holds the digest of its CSRF token and
the binding of the browser session that started it. A form post is accepted only from that
browser (binding) with that token, both compared in constant time (OAuth 2.1 section 7.9), and
the record is taken (read and deleted at once) when the request ends, so it cannot be replayed.

Anyone can start an authorization, so what it keeps is bounded: a record lives PENDING_TTL (five
minutes to sign in and decide), and one browser session holds at most MAX_PENDING_PER_SESSION open
at once (listed, with their expiry, in the hash `auth:pending-open:{digest(binding)}`; a request
leaves it when it is answered or expires; one more is 429). The per-address limit and the
parameter sizes are /authorize's (endpoints/authorize.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from auth_server import crypto
from auth_server.rate_limit import RateLimited
from auth_server.sessions import ANONYMOUS_SESSION_TTL, BrowserSession
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import open_requests_key, pending_key

PENDING_TTL = ANONYMOUS_SESSION_TTL  # five minutes to sign in and decide
MAX_PENDING_PER_SESSION = 20  # authorizations one browser session may have open at once
MAX_REQUEST_ID_LENGTH = 100


class AuthorizationRequest(BaseModel):
    """Everything /authorize validated."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    redirect_uri: str  # as the client sent it (or the single registered one if it sent none)
    registered_redirect_uri: str  # the registered URI it matched (loopback ports may differ)
    redirect_uri_in_request: bool
    state: str | None
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str
    dpop_jkt: str | None = None  # RFC 9449 section 10: the code will be bound to this key


class PendingAuthorization(AuthorizationRequest):
    """A validated request, plus what ties it to one browser and one form."""

    binding: str
    csrf_digest: str  # of the CSRF token last put in a form; "" until a page shows one


class PendingRequestRejected(Exception):
    """Expired, unknown, from another browser, or without the right CSRF token."""


class PendingAuthorizations:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self, request: AuthorizationRequest, session: BrowserSession
    ) -> tuple[str, PendingAuthorization]:
        """Store a pending request bound to `session`; returns its id and the record.

        It has no valid CSRF token yet: each page that shows a form asks `new_csrf_token`.
        RateLimited while this browser session has MAX_PENDING_PER_SESSION requests open.
        """
        await self._make_room(session.binding)
        request_id = crypto.new_credential()
        pending = PendingAuthorization(**request.model_dump(), binding=session.binding, csrf_digest="")
        await records.write(self._store, pending_key(request_id), pending, ttl=PENDING_TTL)
        opened = open_requests_key(session.binding)
        await self._store.hset(opened, crypto.digest(request_id), str(self._clock() + PENDING_TTL))
        await self._store.expire(opened, PENDING_TTL)
        return request_id, pending

    async def _make_room(self, binding: str) -> None:
        """Forget this session's expired requests; RateLimited if it still has too many open."""
        key, now = open_requests_key(binding), self._clock()
        open_until = {field: _seconds(until) for field, until in (await self._store.hgetall(key)).items()}
        for field in [field for field, until in open_until.items() if until <= now]:  # unreadable: 0
            await self._store.hdel(key, field)
            del open_until[field]
        if len(open_until) >= MAX_PENDING_PER_SESSION:
            raise RateLimited(max(1, math.ceil(min(open_until.values()) - now)))

    async def load(
        self, request_id: str, session: BrowserSession | None, csrf: str | None
    ) -> tuple[PendingAuthorization, BrowserSession]:
        """The pending request (and the session) if this browser started it and, when `csrf` is
        given (every POST), the CSRF token is the one last issued for it."""
        if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH or session is None:
            raise PendingRequestRejected
        pending = await records.read(self._store, pending_key(request_id), PendingAuthorization)
        if pending is None:
            raise PendingRequestRejected
        if not crypto.constant_time_equals(pending.binding, session.binding):
            raise PendingRequestRejected
        if csrf is not None and not crypto.constant_time_equals(pending.csrf_digest, crypto.digest(csrf)):
            raise PendingRequestRejected
        return pending, session

    async def finish(self, request_id: str) -> bool:
        """End the request; False if another submission already ended it (double click, replay)."""
        taken = await records.take(self._store, pending_key(request_id), PendingAuthorization)
        if taken is None:
            return False
        await self._store.hdel(open_requests_key(taken.binding), crypto.digest(request_id))
        return True

    async def new_csrf_token(self, request_id: str, pending: PendingAuthorization) -> str:
        """A fresh CSRF token for a form of this request; earlier tokens stop working.

        Only the token's digest is stored, so a page can never re-display an old one: every
        rendering of a form gets a new token, and the record keeps its original expiry.
        """
        key = pending_key(request_id)
        remaining = await self._store.ttl(key)
        if remaining is None or remaining <= 0:
            raise PendingRequestRejected
        csrf = crypto.new_credential()
        updated = pending.model_copy(update={"csrf_digest": crypto.digest(csrf)})
        await records.write(self._store, key, updated, ttl=remaining)
        return csrf


def _seconds(value: str) -> float:
    """An expiry time from the open-requests hash; an unreadable one counts as long past."""
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) else 0.0
