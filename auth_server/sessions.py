"""Browser sessions at the authorization server: who is signed in, in which browser.

One cookie, HttpOnly and SameSite=Lax; on an https issuer it is also `Secure` and carries the
`__Host-` prefix (no Domain, Path=/), so no other host or plain-http page can set or read it.
The cookie holds only a random session id; the record lives server-side under
`auth:session:{digest(id)}`, so a leaked Store holds no usable cookie.

A browser gets an anonymous session at its first /authorize request (short TTL). Every pending
authorization is bound to the session's `binding`, a server-side random value that survives
sign-in, so a pending request (and its CSRF token) is useless from another browser. Signing in
replaces the session id (no session fixation) and extends the TTL to LOGIN_SESSION_TTL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from auth_server import crypto
from shared.settings import Settings
from shared.storage import records
from shared.storage.base import Store
from shared.storage.records import session_key

ANONYMOUS_SESSION_TTL = 300  # five minutes to sign in, as long as a pending authorization lives
SESSION_ID_BYTES = 32


class SessionRecord(BaseModel):
    binding: str
    subject: str | None = None
    auth_time: int | None = None


@dataclass(frozen=True, slots=True)
class BrowserSession:
    session_id: str  # the cookie value; never stored
    record: SessionRecord

    @property
    def subject(self) -> str | None:
        return self.record.subject

    @property
    def binding(self) -> str:
        return self.record.binding


class BrowserSessions:
    def __init__(self, store: Store, *, login_ttl: int, secure: bool) -> None:
        """`secure`: cookies are `Secure` and `__Host-` prefixed (an https issuer)."""
        self._store = store
        self._login_ttl = login_ttl
        self._secure = secure
        self.cookie_name = self.cookie("mcp_as_session")

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> BrowserSessions:
        return cls(
            store, login_ttl=settings.login_session_ttl, secure=urlsplit(settings.issuer).scheme == "https"
        )

    @property
    def secure(self) -> bool:
        """Whether cookies are `Secure` (an https issuer)."""
        return self._secure

    def cookie(self, name: str) -> str:
        """A cookie name of this server: `__Host-` prefixed on an https issuer."""
        return f"__Host-{name}" if self._secure else name

    async def current(self, request: Request) -> BrowserSession | None:
        session_id = request.cookies.get(self.cookie_name)
        if not session_id or len(session_id) > 100:
            return None
        record = await records.read(self._store, session_key(session_id), SessionRecord)
        return None if record is None else BrowserSession(session_id, record)

    async def current_or_new(self, request: Request) -> tuple[BrowserSession, bool]:
        """The browser's session, or a new anonymous one (True: the cookie must be set)."""
        session = await self.current(request)
        if session is not None:
            return session, False
        return await self._save(SessionRecord(binding=crypto.new_credential())), True

    async def sign_in(self, previous: BrowserSession, subject: str, auth_time: int) -> BrowserSession:
        """A fresh session id for the signed-in user, keeping the browser binding."""
        await self._store.delete(session_key(previous.session_id))
        record = SessionRecord(binding=previous.binding, subject=subject, auth_time=auth_time)
        return await self._save(record)

    async def end(self, session: BrowserSession) -> None:
        """Sign out: the session id stops working everywhere at once (the record is gone)."""
        await self._store.delete(session_key(session.session_id))

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", secure=self._secure, httponly=True, samesite="lax")

    def set_cookie(self, response: Response, session: BrowserSession) -> None:
        response.set_cookie(
            self.cookie_name,
            session.session_id,
            max_age=self._ttl(session.record),
            path="/",
            secure=self._secure,
            httponly=True,
            samesite="lax",
        )

    async def _save(self, record: SessionRecord) -> BrowserSession:
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        await records.write(self._store, session_key(session_id), record, ttl=self._ttl(record))
        return BrowserSession(session_id, record)

    def _ttl(self, record: SessionRecord) -> int:
        return self._login_ttl if record.subject else ANONYMOUS_SESSION_TTL
