"""Driving the account and logout pages over HTTP, as a browser would, and getting an app
authorized first (the integration tests here and the attacks in tests/security share them)."""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from typing import Any

import httpx2

from auth_server.users import scrypt_hash
from tests.integration.auth.flow_helpers import (
    Pkce,
    authorize_params,
    callback_dict,
    exchange_code,
    hidden_fields,
    new_pkce,
    register,
    run_flow,
)

PASSWORD = "correct horse battery staple"
_REVOKE_FORM = re.compile(
    r'<input type="hidden" name="csrf" value="(?P<csrf>[^"]*)">\s*'
    r'<input type="hidden" name="client_id" value="(?P<client_id>[^"]*)">'
)


@functools.cache
def users(*names: str) -> dict[str, str]:
    """AUTH_USERS for `names`, all with PASSWORD (hashed at a cheap cost: tests only)."""
    return {name: scrypt_hash(PASSWORD, n=2**10) for name in names}


@dataclass(frozen=True)
class AuthorizedApp:
    """A client the test registered, the user authorized, and the tokens it got."""

    client_id: str
    pkce: Pkce
    tokens: dict[str, Any]

    @property
    def access_token(self) -> str:
        value: str = self.tokens["access_token"]
        return value

    @property
    def refresh_token(self) -> str:
        value: str = self.tokens["refresh_token"]
        return value


async def authorize_app(
    http: httpx2.AsyncClient,
    *,
    username: str = "demo",
    password: str = "demo",
    client_id: str | None = None,
    **metadata: Any,
) -> AuthorizedApp:
    """Register a public client (unless `client_id` names one), sign in, consent and redeem the
    code: the whole interactive flow, with `http`'s cookie jar as the browser."""
    if client_id is None:
        client_id = (await register(http, **metadata))["client_id"]
    pkce = new_pkce()
    back = await run_flow(http, authorize_params(client_id, pkce), username=username, password=password)
    assert back.status_code in (302, 303), back.text
    response = await exchange_code(http, callback_dict(back.headers["location"])["code"], client_id, pkce)
    assert response.status_code == 200, response.text
    return AuthorizedApp(client_id, pkce, response.json())


async def approved_code(http: httpx2.AsyncClient, client_id: str, pkce: Pkce, **login: str) -> str:
    """A fresh authorization code for a client whose consent is remembered (or asked and given)."""
    back = await run_flow(http, authorize_params(client_id, pkce), **login)
    code: str = callback_dict(back.headers["location"])["code"]
    return code


def revoke_forms(page: str) -> dict[str, str]:
    """client_id -> CSRF token of each revoke form on the account page."""
    return {html.unescape(m["client_id"]): html.unescape(m["csrf"]) for m in _REVOKE_FORM.finditer(page)}


async def listed_apps(http: httpx2.AsyncClient) -> list[str]:
    page = await http.get("/account")
    assert page.status_code == 200, page.text
    return list(revoke_forms(page.text))


async def revoke(http: httpx2.AsyncClient, client_id: str) -> httpx2.Response:
    """Press the revoke button of `client_id` on the account page."""
    page = await http.get("/account")
    forms = revoke_forms(page.text)
    assert client_id in forms, f"{client_id} is not listed: {page.text[:2000]}"
    return await http.post("/account/revoke", data={"csrf": forms[client_id], "client_id": client_id})


async def sign_in_to_account(
    http: httpx2.AsyncClient, username: str = "demo", password: str = "demo"
) -> httpx2.Response:
    """Sign in through the signed-out account page's own form."""
    page = await http.get("/account")
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return await http.post("/account/login", data={**fields, "username": username, "password": password})


async def log_out(http: httpx2.AsyncClient) -> httpx2.Response:
    """Confirm on the logout page."""
    page = await http.get("/logout")
    assert page.status_code == 200, page.text
    return await http.post("/logout", data=hidden_fields(page.text))
