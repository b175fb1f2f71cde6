"""Drives the authorization server's login and consent pages headlessly, like a person would.

Given an authorization URL (whatever client built it), `authorize()` GETs it without following
redirects automatically, submits the login form (fields `username` and `password`) and the consent
form (its hidden fields plus the approving button) exactly as a browser would, follows every 303,
and stops at the first Location that points at the client's redirect URI. It returns what the
client's callback would receive: `code`, `state` and `iss` (or `error`). Nothing needs to listen at
the redirect URI; `follow_to_callback()` delivers the URL when something does (Inspector's
callback server, the conformance suite's).

Synchronous on purpose (httpx2.Client, its own cookie jar): callers inside an event loop run it in
a worker thread (`authorize_async`), which also keeps it apart from any client under test.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio.to_thread
import httpx2

DEMO_USER = ("demo", "demo")
MAX_STEPS = 20

_APPROVE = re.compile(r"allow|approve|accept|authori[sz]e|consent|grant|continue|yes|confirm", re.I)
_DENY = re.compile(r"deny|cancel|reject|decline|refuse|\bno\b", re.I)


class LoginDriverError(AssertionError):
    """The pages did not lead to the redirect URI; the message says where and what was seen."""


@dataclass
class AuthorizationResponse:
    """What arrived at the redirect URI, and the path taken to get there."""

    redirect_url: str
    code: str | None
    state: str | None
    iss: str | None
    error: str | None
    error_description: str | None
    saw_login: bool = False
    saw_consent: bool = False
    visited: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.redirect_url).query, keep_blank_values=True)


@dataclass
class _Form:
    action: str | None
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)  # successful controls, in order
    submits: list[tuple[str | None, str, str]] = field(default_factory=list)  # name, value, label
    text_inputs: set[str] = field(default_factory=set)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._form: _Form | None = None
        self._button: tuple[str | None, str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = _Form(action=a.get("action"), method=(a.get("method") or "get").lower())
            self.forms.append(self._form)
            return
        form = self._form
        if form is None:
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if kind in ("submit", "image"):
                form.submits.append((name, a.get("value", ""), a.get("value", "")))
            elif kind in ("checkbox", "radio"):
                if name and "checked" in a:
                    form.fields.append((name, a.get("value", "on")))
            elif name and kind not in ("button", "reset", "file"):
                form.fields.append((name, a.get("value", "")))
                if kind in ("text", "password", "email"):
                    form.text_inputs.add(name)
        elif tag == "button":
            kind = (a.get("type") or "submit").lower()
            if kind == "submit":
                self._button = (a.get("name"), a.get("value", ""), [])
        elif tag == "textarea" and a.get("name"):
            form.fields.append((a["name"], ""))

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button[2].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self._form is not None:
            name, value, text = self._button
            self._form.submits.append((name, value, " ".join("".join(text).split())))
            self._button = None
        elif tag == "form":
            self._form = None


def _pick_submit(form: _Form, approve: bool) -> tuple[str | None, str] | None:
    if not form.submits:
        return None
    wanted, unwanted = (_APPROVE, _DENY) if approve else (_DENY, _APPROVE)
    for name, value, label in form.submits:
        words = f"{name or ''} {value} {label}"
        if wanted.search(words) and not unwanted.search(words):
            return name, value
    if approve and len(form.submits) == 1:
        name, value, _ = form.submits[0]
        return name, value
    labels = [s[2] or s[1] for s in form.submits]
    raise LoginDriverError(f"no {'approving' if approve else 'denying'} button among {labels}")


def _is_redirect_target(location: str, redirect_uri: str | None, as_origin: str) -> bool:
    if redirect_uri is not None:
        base = redirect_uri.split("?", 1)[0]
        target = location.split("?", 1)[0].split("#", 1)[0]
        if target == base:
            return True
        # RFC 8252: a loopback redirect URI matches on any port.
        want, got = urlsplit(base), urlsplit(target)
        return want.hostname in ("127.0.0.1", "localhost", "::1") and (
            want.scheme,
            want.hostname,
            want.path,
        ) == (got.scheme, got.hostname, got.path)
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}" != as_origin


def _single(query: dict[str, list[str]], name: str, location: str) -> str | None:
    values = query.get(name)
    if values and len(values) > 1:
        raise LoginDriverError(f"parameter {name} appears {len(values)} times: {location}")
    return values[0] if values else None


def authorize(
    authorize_url: str,
    *,
    redirect_uri: str | None = None,
    username: str = DEMO_USER[0],
    password: str = DEMO_USER[1],
    approve: bool = True,
    client: httpx2.Client | None = None,
    verify: ssl.SSLContext | bool = True,
) -> AuthorizationResponse:
    """Walk from the authorization URL to the redirect URI, logging in and consenting.

    `redirect_uri` defaults to the one in the authorization URL. Pass a `client` to keep a login
    session (cookies) across several authorizations, as a browser would; `verify` is how the
    driver's own client checks an https server (a context trusting a test CA).
    """
    if redirect_uri is None:
        redirect_uri = parse_qs(urlsplit(authorize_url).query).get("redirect_uri", [None])[0]
    parts = urlsplit(authorize_url)
    as_origin = f"{parts.scheme}://{parts.netloc}"
    owns_client = client is None
    http = client or httpx2.Client(follow_redirects=False, timeout=15.0, trust_env=False, verify=verify)
    visited: list[str] = []
    saw_login = saw_consent = False
    try:
        method, url = "GET", authorize_url
        data: list[tuple[str, str]] | None = None
        for _ in range(MAX_STEPS):
            visited.append(f"{method} {url}")
            if data is None:
                response = http.request(method, url, follow_redirects=False)
            else:
                response = http.request(
                    method,
                    url,
                    content=urlencode(data).encode(),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                    follow_redirects=False,
                )
            if response.is_redirect:
                location = urljoin(url, response.headers["location"])
                if _is_redirect_target(location, redirect_uri, as_origin):
                    query = parse_qs(urlsplit(location).query)
                    return AuthorizationResponse(
                        redirect_url=location,
                        code=_single(query, "code", location),
                        state=_single(query, "state", location),
                        iss=_single(query, "iss", location),
                        error=_single(query, "error", location),
                        error_description=_single(query, "error_description", location),
                        saw_login=saw_login,
                        saw_consent=saw_consent,
                        visited=visited,
                    )
                method, url, data = "GET", location, None
                continue
            content_type = response.headers.get("content-type", "")
            if response.status_code != 200 or "html" not in content_type:
                raise LoginDriverError(
                    f"{method} {url} answered {response.status_code} ({content_type}); "
                    f"path so far: {visited}\n{response.text[:1500]}"
                )
            parser = _FormParser()
            parser.feed(response.text)
            forms = [f for f in parser.forms if f.method == "post"]
            if not forms:
                raise LoginDriverError(f"page at {url} has no POST form:\n{response.text[:1500]}")
            form = next((f for f in forms if "password" in {n for n, _ in f.fields}), forms[0])
            fields = list(form.fields)
            names = {n for n, _ in fields}
            if "username" in names and "password" in names:
                saw_login = True
                fields = [(n, v) for n, v in fields if n not in ("username", "password")]
                fields += [("username", username), ("password", password)]
            else:
                saw_consent = True
            chosen = _pick_submit(form, approve=approve)
            if chosen is not None and chosen[0]:
                fields.append((chosen[0], chosen[1]))
            method, url = "POST", urljoin(url, form.action or url)
            data = fields
        raise LoginDriverError(f"no redirect to {redirect_uri} after {MAX_STEPS} steps: {visited}")
    finally:
        if owns_client:
            http.close()


async def authorize_async(authorize_url: str, **kwargs: object) -> AuthorizationResponse:
    """`authorize()` in a worker thread, for use inside an event loop (e.g. an SDK redirect handler)."""
    return await anyio.to_thread.run_sync(lambda: authorize(authorize_url, **kwargs))  # type: ignore[arg-type]


def follow_to_callback(response: AuthorizationResponse, timeout: float = 15.0) -> httpx2.Response:
    """Deliver the redirect to whatever listens at the redirect URI (a client's callback server)."""
    with httpx2.Client(timeout=timeout, trust_env=False) as http:
        return http.get(response.redirect_url, follow_redirects=True)
