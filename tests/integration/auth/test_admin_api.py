"""The admin API (docs/operations.md, "The admin surface"): clients, grants, signing keys, purge.

Every test runs in the four deployments of this folder (internal: the AS mounted in the MCP app;
external: the standalone AS; each on memory and on Redis), against a server started with an admin
token configured (ADMIN_TOKEN_SHA256). What each action ends is checked where a client would see
it: at /token, at /introspect, and in internal mode at /mcp itself. Attacks on the API's door are
in tests/security/test_admin_attacks.py.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from auth_server import crypto
from auth_server.admin.credentials import new_admin_token
from auth_server.audit import fingerprint
from shared.settings import Settings
from shared.storage.base import Store
from shared.storage.records import grant_members_key
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, AuthServers, Configure, HttpFactory
from tests.integration.auth.helpers import (
    add_client,
    configured_client,
    is_active,
    refresh,
    store_code,
    tokens_for,
)
from tests.integration.auth.test_token_endpoint import assert_error
from tests.resilience.cluster import modern_call

# In every deployment: the admin API walks the store's per-user and per-client indexes (listing, revoking,
# purging) in each mode.
DEPLOYMENTS = ALL_DEPLOYMENTS

ADMIN_TOKEN, ADMIN_DIGEST = new_admin_token()
ADMIN = {"admin_token_sha256": [ADMIN_DIGEST]}
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def admin_call(
    http: httpx2.AsyncClient, method: str, path: str, expected: int = 200, **kwargs: Any
) -> dict[str, Any]:
    response = await http.request(method, f"/admin{path}", headers=BEARER, **kwargs)
    assert response.status_code == expected, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def client_path(client_id: str) -> str:
    return f"/clients/{quote(client_id, safe='')}"


async def mcp_status(servers: AuthServers, http: httpx2.AsyncClient, token: str) -> int | None:
    """What /mcp answers the token (internal mode: the AS lives in the MCP app); None externally."""
    if servers.mode != "internal":
        return None
    body, headers = modern_call("whoami", {}, token)
    response = await http.post("/mcp", json=body, headers=headers)
    return response.status_code


async def assert_dead(servers: AuthServers, http: httpx2.AsyncClient, tokens: dict[str, Any]) -> None:
    for name in ("access_token", "refresh_token"):
        if name in tokens:
            assert not await is_active(http, tokens[name]), name
    assert await mcp_status(servers, http, tokens["access_token"]) in (None, 401)


async def assert_alive(servers: AuthServers, http: httpx2.AsyncClient, tokens: dict[str, Any]) -> None:
    assert await is_active(http, tokens["access_token"])
    assert await mcp_status(servers, http, tokens["access_token"]) in (None, 200)


@pytest.fixture
async def admin(make_http: HttpFactory) -> httpx2.AsyncClient:
    """A client of a server of this deployment with the admin API on."""
    return await make_http(**ADMIN)


# -- clients ---------------------------------------------------------------------------------


async def test_the_client_list_names_configured_registered_and_authorized_clients(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    entry, machine = configured_client(grant_types=["client_credentials"], scope="mcp:tools:read notes:read")
    http = await make_http(**ADMIN, auth_clients=[entry])
    registered = await http.post(
        "/register",
        json={
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "client_name": "Registered here",
            "application_type": "native",
        },
    )
    assert registered.status_code == 201, registered.text
    holder = await add_client(store)  # written behind the registry's back: listed once it holds a grant
    await tokens_for(http, store, configure(), holder)

    listed = {c["client_id"]: c for c in (await admin_call(http, "GET", "/clients"))["clients"]}

    assert listed[machine.client_id]["source"] == "preregistered"
    assert listed[machine.client_id]["grant_types"] == ["client_credentials"]
    assert listed[registered.json()["client_id"]]["client_name"] == "Registered here"
    assert listed[registered.json()["client_id"]]["source"] == "dynamic"
    assert listed[holder.client_id]["disabled"] is False
    everything = json.dumps(listed)
    assert machine.secret is not None
    assert machine.secret not in everything
    assert crypto.digest(machine.secret) not in everything


async def test_showing_a_client_names_its_users_and_counts_its_grants(
    admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    await tokens_for(admin, store, settings, client, subject="alice")
    await tokens_for(admin, store, settings, client, subject="bob")
    await tokens_for(admin, store, settings, client, subject="bob")

    shown = await admin_call(admin, "GET", client_path(client.client_id))

    assert shown["users"] == ["alice", "bob"]
    assert shown["grants"] == 3
    assert shown["machine_tokens"] == 0
    assert (await admin_call(admin, "GET", client_path("no-such-client"), 404))["error"] == "not_found"


async def test_a_disabled_client_gets_no_token_and_every_token_it_held_stops_working(
    servers: AuthServers, admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client, bystander = await add_client(store), await add_client(store)
    held = await tokens_for(admin, store, settings, client)
    other = await tokens_for(admin, store, settings, bystander)
    await assert_alive(servers, admin, held)

    change = await admin_call(admin, "PATCH", client_path(client.client_id), json={"disabled": True})

    assert change == {
        "client_id": client.client_id,
        "disabled": True,
        "deleted": False,
        "ended": {"grants": 1, "live_tokens": 2},
    }
    await assert_dead(servers, admin, held)
    assert_error(await refresh(admin, held["refresh_token"], client), "invalid_client", 401)
    code = await store_code(store, client, settings=settings)
    redeemed = await admin.post(
        "/token", data={"grant_type": "authorization_code", "code": code.code, **client.auth()}
    )
    assert_error(redeemed, "invalid_client", 401)
    start = await admin.get("/authorize", params={"response_type": "code", "client_id": client.client_id})
    assert start.status_code == 400
    assert "disabled" in start.text
    assert (await admin_call(admin, "GET", client_path(client.client_id)))["disabled"] is True
    await assert_alive(servers, admin, other)


async def test_an_enabled_client_gets_tokens_again_but_nothing_it_held_comes_back(
    admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    held = await tokens_for(admin, store, settings, client)
    await admin_call(admin, "PATCH", client_path(client.client_id), json={"disabled": True})

    change = await admin_call(admin, "PATCH", client_path(client.client_id), json={"disabled": False})

    assert change["disabled"] is False
    assert not await is_active(admin, held["access_token"])
    # (Another user: the one whose app was just revoked has codes refused for a 2 s margin.)
    fresh = await tokens_for(admin, store, settings, client, subject="signs-in-after")
    assert await is_active(admin, fresh["access_token"])


async def test_disabling_a_machine_client_ends_its_client_credentials_tokens(
    servers: AuthServers, make_http: HttpFactory
) -> None:
    entry, machine = configured_client(grant_types=["client_credentials"], scope="mcp:tools:read notes:read")
    http = await make_http(**ADMIN, auth_clients=[entry])
    form = {"grant_type": "client_credentials"}
    issued = (await http.post("/token", data=form, auth=machine.basic())).json()
    await assert_alive(servers, http, issued)
    assert (await admin_call(http, "GET", client_path(machine.client_id)))["machine_tokens"] == 1

    change = await admin_call(http, "PATCH", client_path(machine.client_id), json={"disabled": True})

    assert change["ended"] == {"grants": 0, "live_tokens": 1}
    await assert_dead(servers, http, issued)
    assert_error(await http.post("/token", data=form, auth=machine.basic()), "invalid_client", 401)


async def test_deleting_a_registered_client_ends_its_tokens_and_its_registration(
    servers: AuthServers, admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    held = await tokens_for(admin, store, settings, client)

    change = await admin_call(admin, "DELETE", client_path(client.client_id))

    assert change["deleted"] is True
    assert change["ended"] == {"grants": 1, "live_tokens": 2}
    await assert_dead(servers, admin, held)
    assert await store.get(f"auth:client:{client.client_id}") is None
    listed = [c["client_id"] for c in (await admin_call(admin, "GET", "/clients"))["clients"]]
    assert client.client_id not in listed
    gone = await admin_call(admin, "GET", client_path(client.client_id))
    assert (gone["source"], gone["users"]) == (None, [])
    assert gone["disabled"] is True, "refused for a while, so that no request in flight mints into it"


async def test_a_configured_client_cannot_be_deleted_only_disabled(make_http: HttpFactory) -> None:
    entry, machine = configured_client(grant_types=["client_credentials"], scope="mcp:tools:read notes:read")
    http = await make_http(**ADMIN, auth_clients=[entry])
    refused = await admin_call(http, "DELETE", client_path(machine.client_id), 409)
    assert refused["error"] == "conflict"
    assert "AUTH_CLIENTS" in refused["error_description"]
    assert (
        await http.post("/token", data={"grant_type": "client_credentials"}, auth=machine.basic())
    ).is_success


async def test_a_metadata_document_client_can_be_disabled_before_it_ever_came(
    admin: httpx2.AsyncClient,
) -> None:
    url = f"https://{uuid.uuid4().hex}.example/client.json"
    change = await admin_call(admin, "PATCH", client_path(url), json={"disabled": True})
    assert change["disabled"] is True
    listed = {c["client_id"]: c for c in (await admin_call(admin, "GET", "/clients"))["clients"]}
    assert listed[url]["disabled"] is True
    assert listed[url]["source"] is None  # never fetched: nothing is known but its URL
    start = await admin.get("/authorize", params={"response_type": "code", "client_id": url})
    assert start.status_code == 400
    assert "disabled" in start.text


# -- grants ----------------------------------------------------------------------------------


async def test_grants_are_listed_by_user_by_client_and_by_both(
    admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    one, two = await add_client(store), await add_client(store)
    user = f"user-{uuid.uuid4().hex[:8]}"
    await tokens_for(admin, store, settings, one, subject=user)
    await tokens_for(admin, store, settings, two, subject=user)
    await tokens_for(admin, store, settings, one, subject="someone-else")

    by_user = (await admin_call(admin, "GET", "/grants", params={"subject": user}))["grants"]
    by_client = (await admin_call(admin, "GET", "/grants", params={"client_id": one.client_id}))["grants"]
    pair = (await admin_call(admin, "GET", "/grants", params={"subject": user, "client_id": two.client_id}))[
        "grants"
    ]

    assert sorted(g["client_id"] for g in by_user) == sorted([one.client_id, two.client_id])
    assert sorted(g["subject"] for g in by_client) == ["someone-else", user]
    assert [(g["subject"], g["client_id"]) for g in pair] == [(user, two.client_id)]
    assert set(by_user[0]) >= {"grant_id", "scope", "resource", "created_at", "last_used_at"}
    assert (await admin_call(admin, "GET", "/grants", 400))["error"] == "invalid_request"


async def test_revoking_a_users_grants_ends_every_app_they_authorized_and_no_one_elses(
    servers: AuthServers, admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    one, two = await add_client(store), await add_client(store)
    user = f"user-{uuid.uuid4().hex[:8]}"
    first = await tokens_for(admin, store, settings, one, subject=user)
    second = await tokens_for(admin, store, settings, two, subject=user)
    other = await tokens_for(admin, store, settings, one, subject="bystander")

    ended = await admin_call(admin, "DELETE", "/grants", params={"subject": user})

    assert ended == {"grants": 2, "live_tokens": 4}
    await assert_dead(servers, admin, first)
    await assert_dead(servers, admin, second)
    await assert_alive(servers, admin, other)
    assert (await admin_call(admin, "GET", "/grants", params={"subject": user}))["grants"] == []


async def test_revoking_a_clients_grants_ends_every_users_and_its_machine_tokens(
    servers: AuthServers, make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    entry, machine = configured_client(
        grant_types=["client_credentials", "authorization_code", "refresh_token"],
        redirect_uris=["http://127.0.0.1:53124/callback"],
        scope="mcp:tools:read notes:read",
    )
    http = await make_http(**ADMIN, auth_clients=[entry])
    settings = configure(auth_clients=[entry])
    users = [
        await tokens_for(
            http, store, settings, machine, subject=f"u{i}", scope=("mcp:tools:read", "notes:read")
        )
        for i in range(2)
    ]
    own = (await http.post("/token", data={"grant_type": "client_credentials"}, auth=machine.basic())).json()

    ended = await admin_call(http, "DELETE", "/grants", params={"client_id": machine.client_id})

    assert ended == {"grants": 2, "live_tokens": 5}
    for tokens in [*users, own]:
        await assert_dead(servers, http, tokens)
    fresh = await http.post("/token", data={"grant_type": "client_credentials"}, auth=machine.basic())
    assert fresh.status_code == 200, "revoking is not disabling: the client may ask again"


async def test_one_grant_is_revoked_by_its_id(
    servers: AuthServers, admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    doomed = await tokens_for(admin, store, settings, client)
    kept = await tokens_for(admin, store, settings, client)
    doomed_id = await _grant_of(store, doomed)
    listed = (await admin_call(admin, "GET", "/grants", params={"client_id": client.client_id}))["grants"]
    assert doomed_id in [g["grant_id"] for g in listed]

    assert await admin_call(admin, "DELETE", f"/grants/{doomed_id}") == {"grants": 1, "live_tokens": 2}

    await assert_dead(servers, admin, doomed)
    await assert_alive(servers, admin, kept)
    assert (await admin_call(admin, "DELETE", f"/grants/{doomed_id}", 404))["error"] == "not_found"
    assert (await admin_call(admin, "DELETE", "/grants/{braces}", 404))["error"] == "not_found"


async def _grant_of(store: Store, tokens: dict[str, Any]) -> str:
    """The grant a refresh token belongs to, as the Store records it."""
    raw = await store.get(f"auth:refresh:{crypto.digest(tokens['refresh_token'])}")
    assert raw is not None
    grant_id: str = json.loads(raw)["grant_id"]
    return grant_id


# -- purge -----------------------------------------------------------------------------------


async def test_purge_forgets_what_grants_and_indexes_still_held_of_ended_tokens(
    admin: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    user = f"user-{uuid.uuid4().hex[:8]}"
    tokens = await tokens_for(admin, store, settings, client, subject=user)
    for _ in range(3):  # each rotation leaves the consumed refresh token in the grant's set
        tokens = (await refresh(admin, tokens["refresh_token"], client)).json()
    grant_id = await _grant_of(store, tokens)
    remembered = len(await store.smembers(grant_members_key(grant_id)))
    assert remembered == 8  # 4 access tokens (alive), 4 refresh tokens (3 consumed)
    gone = await tokens_for(admin, store, settings, client, subject=f"{user}-gone")
    await admin.post("/revoke", data={"token": gone["refresh_token"], **client.auth()})

    report = await _purge_all(admin)

    assert report["grant_token_entries_pruned"] >= 3
    assert report["index_entries_pruned"] >= 1  # the revoked grant's user: an app holding nothing
    assert len(await store.smembers(grant_members_key(grant_id))) == 5
    assert await is_active(admin, tokens["refresh_token"])
    assert (await refresh(admin, tokens["refresh_token"], client)).status_code == 200
    assert (await admin_call(admin, "GET", client_path(client.client_id)))["users"] == [user]


async def test_purge_goes_page_by_page(admin: httpx2.AsyncClient, store: Store, settings: Settings) -> None:
    for _ in range(3):
        await tokens_for(admin, store, settings, await add_client(store))
    first = await admin_call(admin, "POST", "/purge", json={"limit": 1})
    assert first["clients_checked"] == 1
    assert first["next"] is not None
    second = await admin_call(admin, "POST", "/purge", json={"after": first["next"], "limit": 1})
    assert second["clients_checked"] == 1
    assert second["expired_removed"] == 0  # the store is swept on the first page only
    assert (await admin_call(admin, "POST", "/purge", json={"limit": 0}, expected=400))[
        "error"
    ] == "invalid_request"


async def _purge_all(http: httpx2.AsyncClient) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    body: dict[str, Any] = {}
    while True:
        page = await admin_call(http, "POST", "/purge", json=body)
        for name, value in page.items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
        if page["next"] is None:
            return totals
        body = {"after": page["next"]}


async def test_every_admin_action_is_audited_with_the_admin_tokens_fingerprint(
    admin: httpx2.AsyncClient, store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await add_client(store)
    await tokens_for(admin, store, settings, client)
    caplog.set_level("INFO", logger="auth_server.audit")
    await admin_call(admin, "PATCH", client_path(client.client_id), json={"disabled": True})
    await admin_call(admin, "PATCH", client_path(client.client_id), json={"disabled": False})
    await admin_call(admin, "DELETE", "/grants", params={"client_id": client.client_id})
    await admin_call(admin, "DELETE", client_path(client.client_id))
    await admin_call(admin, "POST", "/purge")
    await admin_call(admin, "GET", "/grants", params={"subject": "demo"})

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "auth_server.audit"]
    admin_lines = [line for line in lines if line.get("token_fp") == fingerprint(ADMIN_TOKEN)]
    assert [line["event"] for line in admin_lines] == [
        "client_disabled",
        "client_enabled",
        "grants_revoked",
        "client_deleted",
        "store_purged",
        "admin_read",
    ]
    assert admin_lines[-1]["subject"] == "demo"
    assert admin_lines[-1]["endpoint"] == "/admin/grants"
    assert all(line["ip"].startswith("127.") for line in admin_lines)
    assert ADMIN_TOKEN not in caplog.text
