"""Driving /authorize, the login page and the consent page over HTTP, as a browser would.

Each helper does one visible step (GET a page, post its form) and returns the raw response, so a
test can look at any status, header or page on the way. `run_flow` chains them for tests about
what comes after.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2

from tests.integration.auth.helpers import REDIRECT_URI, pkce_pair

_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[a-z_]+)" value="(?P<value>[^"]*)">')
_ACTION = re.compile(r'<form method="post" action="(?P<action>[^"]+)">')


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    verifier, challenge = pkce_pair()
    return Pkce(verifier, challenge)


def authorize_params(client_id: str, pkce: Pkce, **extra: str | None) -> dict[str, str]:
    """A valid authorization request; pass name=None to leave a parameter out."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "state": "state-123",
    }
    params.update(extra)
    return {name: value for name, value in params.items() if value is not None}


def hidden_fields(page: str) -> dict[str, str]:
    return {m["name"]: html.unescape(m["value"]) for m in _HIDDEN.finditer(page)}


def form_action(page: str) -> str:
    match = _ACTION.search(page)
    assert match, f"no form on the page: {page[:500]}"
    return html.unescape(match["action"])


def callback_params(location: str) -> list[tuple[str, str]]:
    """The query of a redirect to the client, as (name, value) pairs (repeats visible)."""
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)


def callback_dict(location: str) -> dict[str, str]:
    pairs = callback_params(location)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"repeated parameter in {location}"
    return dict(pairs)


def is_client_redirect(response: httpx2.Response, redirect_uri: str = REDIRECT_URI) -> bool:
    location = response.headers.get("location", "")
    base = urlsplit(redirect_uri)
    got = urlsplit(location)
    return (got.scheme, got.hostname, got.path) == (base.scheme, base.hostname, base.path)


async def sign_in(
    http: httpx2.AsyncClient, login_location: str, username: str = "demo", password: str = "demo"
) -> httpx2.Response:
    """GET the login page at `login_location` and post its form."""
    page = await http.get(login_location)
    assert page.status_code == 200, page.text
    fields = hidden_fields(page.text)
    return await http.post(
        form_action(page.text), data={**fields, "username": username, "password": password}
    )


async def decide(
    http: httpx2.AsyncClient, consent_location: str, decision: str = "approve"
) -> httpx2.Response:
    """GET the consent page at `consent_location` and press Allow (or Deny)."""
    page = await http.get(consent_location)
    assert page.status_code == 200, page.text
    return await http.post(form_action(page.text), data={**hidden_fields(page.text), "decision": decision})


async def run_flow(
    http: httpx2.AsyncClient,
    params: dict[str, str],
    *,
    decision: str = "approve",
    username: str = "demo",
    password: str = "demo",
) -> httpx2.Response:
    """From /authorize to the redirect back to the client, signing in and consenting as needed."""
    response = await http.get("/authorize", params=params)
    for _ in range(6):
        location = response.headers.get("location", "")
        path = urlsplit(location).path
        if response.status_code not in (302, 303) or not path.endswith(("/login", "/consent")):
            return response
        if path.endswith("/login"):
            response = await sign_in(http, location, username, password)
        else:
            response = await decide(http, location, decision)
    raise AssertionError("the flow did not reach the client")


async def exchange_code(
    http: httpx2.AsyncClient, code: str, client_id: str, pkce: Pkce, **extra: str
) -> httpx2.Response:
    data: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": pkce.verifier,
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        **extra,
    }
    return await http.post("/token", data=data)


async def register(http: httpx2.AsyncClient, **metadata: Any) -> dict[str, Any]:
    """A public loopback client registered through /register (overridable metadata)."""
    body: dict[str, Any] = {
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Test app",
        "application_type": "native",
    }
    body.update(metadata)
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered
