"""Attacks on RFC 8693 token exchange, the MCP server's way to a downstream API's token.

Against the real authorization server in process, on both stores. The standalone server (external
mode) serves the grant to the MCP server's delegation credential only; internal mode serves it to
nobody at /token (the MCP server exchanges in process). Each test performs one attack and asserts
the refusal: other clients (registered, a machine client, the introspection credential, a public
client, a wrong secret), audiences nobody listed (the MCP server itself included), a scope wider
than the user's or none, subject tokens that are no live access token (a refresh token, garbage,
a revoked one, an exchanged one: no chaining), the wrong token types, an actor token. And what an
exchanged token is: a JWT for the API alone (refused at /mcp), with `act` naming the MCP server,
short-lived, dying with the user's grant.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx2
import pytest

from auth_server.grants.grant import Grants
from mcp_server.app import create_app
from shared.storage.base import Store
from tests.fixtures.local_server import LocalServer
from tests.integration.auth.conftest import DEPLOYMENTS, Configure, HttpFactory
from tests.integration.auth.helpers import (
    RESOURCE,
    RS_CLIENT_ID,
    RS_CLIENT_SECRET,
    add_client,
    configured_client,
    tokens_for,
)
from tests.integration.auth.helpers import (
    oauth_refused as refused,
)

API = "https://profile.example/api"
DELEGATE = "mcp-delegate"
DELEGATE_SECRET = "delegate-secret-for-tests-0123456789"
EXCHANGE = {
    "token_exchange_audiences": [API],
    "token_exchange_client_id": DELEGATE,
    "token_exchange_client_secret": DELEGATE_SECRET,
}
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
USER_SCOPE = ("mcp:tools:read", "notes:read", "profile:read")

pytestmark = pytest.mark.parametrize("as_deployment", [DEPLOYMENTS[2], DEPLOYMENTS[3]], indirect=True)


def exchange_form(subject_token: str, **overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": GRANT,
        "subject_token": subject_token,
        "subject_token_type": ACCESS,
        "audience": API,
        "scope": "profile:read",
        **overrides,
    }
    return {name: value for name, value in form.items() if value is not None}


async def user_token(http: httpx2.AsyncClient, store: Store, configure: Configure) -> dict[str, Any]:
    client = await add_client(store)
    return await tokens_for(http, store, configure(**EXCHANGE), client, scope=USER_SCOPE)


async def delegate(http: httpx2.AsyncClient, subject_token: str, **overrides: str | None) -> httpx2.Response:
    return await http.post(
        "/token", data=exchange_form(subject_token, **overrides), auth=(DELEGATE, DELEGATE_SECRET)
    )


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def test_the_delegation_credential_gets_a_narrow_short_lived_token_for_the_api(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**EXCHANGE)
    user = await user_token(http, store, configure)
    response = await delegate(http, user["access_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ACCESS
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    assert body["scope"] == "profile:read"
    assert body["expires_in"] <= 300
    claims = claims_of(body["access_token"])
    assert claims["aud"] == API
    assert claims["sub"] == "demo"
    assert claims["act"] == {"sub": RESOURCE}
    assert claims["client_id"] == DELEGATE
    assert claims["scope"] == "profile:read"
    assert claims["exp"] - claims["iat"] <= 300


async def test_the_exchanged_token_is_refused_by_the_mcp_server(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**EXCHANGE)
    user = await user_token(http, store, configure)
    exchanged = (await delegate(http, user["access_token"])).json()["access_token"]
    mcp = await LocalServer.reserve().start(create_app(configure(auth_mode="internal", **EXCHANGE), store))
    try:
        async with httpx2.AsyncClient(base_url=mcp.url, timeout=10.0) as client:
            response = await client.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
                headers={
                    "Authorization": f"Bearer {exchanged}",
                    "Accept": "application/json, text/event-stream",
                },
            )
    finally:
        await mcp.stop()
    assert response.status_code == 401, response.text


async def test_no_other_client_may_exchange(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    machine_entry, machine = configured_client(grant_types=["client_credentials"], scope="profile:read")
    http = await make_http(auth_clients=[machine_entry], **EXCHANGE)
    subject = (await user_token(http, store, configure))["access_token"]
    registered = await add_client(store, confidential=True, grant_types=("authorization_code", GRANT))
    public = await add_client(store)
    attempts = [
        (registered.client_id, registered.secret),
        (machine.client_id, machine.secret),
        (RS_CLIENT_ID, RS_CLIENT_SECRET),  # the introspection credential
    ]
    for client_id, secret in attempts:
        response = await http.post("/token", data=exchange_form(subject), auth=(client_id, secret or ""))
        refused(response, "unauthorized_client")
    refused(
        await http.post("/token", data={**exchange_form(subject), "client_id": public.client_id}),
        "unauthorized_client",
    )
    wrong_secret = await http.post("/token", data=exchange_form(subject), auth=(DELEGATE, "x" * 40))
    refused(wrong_secret, "invalid_client", 401)


async def test_only_listed_audiences_and_never_the_mcp_server(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**EXCHANGE)
    subject = (await user_token(http, store, configure))["access_token"]
    for audience in ("https://evil.example/api", RESOURCE, None):
        refused(await delegate(http, subject, audience=audience), "invalid_target")
    refused(await delegate(http, subject, resource="https://evil.example/api"), "invalid_target")
    resource_form = await delegate(http, subject, audience=None, resource=API)  # resource= works too
    assert resource_form.status_code == 200, resource_form.text


async def test_the_scope_is_required_and_never_wider_than_the_users(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**EXCHANGE)
    client = await add_client(store)
    narrow = await tokens_for(http, store, configure(**EXCHANGE), client, scope=("mcp:tools:read",))
    refused(await delegate(http, narrow["access_token"]), "invalid_scope")  # profile:read not granted
    refused(await delegate(http, narrow["access_token"], scope=None), "invalid_request")
    wide = (await user_token(http, store, configure))["access_token"]
    refused(await delegate(http, wide, scope="profile:read notes:write"), "invalid_scope")


async def test_only_a_live_access_token_of_ours_is_a_subject(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**EXCHANGE)
    user = await user_token(http, store, configure)
    for subject in (user["refresh_token"], "garbage", "a.b.c"):
        refused(await delegate(http, subject), "invalid_grant")
    exchanged = (await delegate(http, user["access_token"])).json()["access_token"]
    refused(await delegate(http, exchanged), "invalid_grant")  # no chaining
    refused(
        await delegate(
            http, user["access_token"], subject_token_type="urn:ietf:params:oauth:token-type:id_token"
        ),
        "invalid_request",
    )
    refused(
        await delegate(http, user["access_token"], actor_token="x", actor_token_type=ACCESS),
        "invalid_request",
    )
    refused(
        await delegate(
            http, user["access_token"], requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"
        ),
        "invalid_request",
    )


async def test_the_exchanged_token_dies_with_the_users_grant(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**EXCHANGE)
    user = await user_token(http, store, configure)
    exchanged = (await delegate(http, user["access_token"])).json()["access_token"]
    jti_key = f"auth:jti:{claims_of(exchanged)['jti']}"
    assert await store.get(jti_key) is not None
    grant_id = json.loads(await store.get(jti_key) or "{}")["grant_id"]
    await Grants(store).revoke(grant_id)
    assert await store.get(jti_key) is None
    refused(await delegate(http, user["access_token"]), "invalid_grant")  # the subject died too


async def test_the_exchanged_token_never_outlives_the_subject_token(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(access_token_ttl=60, **EXCHANGE)
    client = await add_client(store)
    user = await tokens_for(http, store, configure(access_token_ttl=60, **EXCHANGE), client, scope=USER_SCOPE)
    body = (await delegate(http, user["access_token"])).json()
    assert body["expires_in"] <= 60
    assert claims_of(body["access_token"])["exp"] <= int(time.time()) + 61
