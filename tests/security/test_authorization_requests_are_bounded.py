"""What an anonymous caller can make /authorize keep (issue 9 item 7, first part).

The attack: 2,000 cookie-less POST /authorize with a 15 kB `state`, each valid. Before the fix,
each one kept a pending authorization (with its state) and an anonymous session for 10 minutes:
+31 MB in two seconds, and no limit at all on how many. Now: no parameter may exceed 2,000
characters (refused before anything is looked up or stored), each client address gets
RATE_LIMIT_PER_MINUTE authorization requests a minute, each browser session at most 20 pending
requests, and a pending request lives 5 minutes. On both stores (memory, Redis; internal mode,
the route being the same in both): the Store is what the attack fills.
"""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from auth_server.pending import MAX_PENDING_PER_SESSION, PENDING_TTL
from shared.storage.base import Store
from shared.storage.records import pending_key, session_key
from tests.integration.auth.conftest import BOTH_STORES, HttpFactory
from tests.integration.auth.flow_helpers import (
    authorize_params,
    callback_dict,
    decide,
    new_pkce,
    register,
    run_flow,
    sign_in,
)
from tests.security.store_view import stored_keys

# On both stores: the Store is what the attack fills, and each must stay bounded (/authorize is the
# same route in both modes' apps).
DEPLOYMENTS = BOTH_STORES

ATTACK_REQUESTS = 2_000


async def flood(http: httpx2.AsyncClient, params: dict[str, str], count: int) -> dict[int, int]:
    """`count` cookie-less POST /authorize, 20 at a time; how many got each status."""
    statuses: dict[int, int] = {}
    semaphore = asyncio.Semaphore(20)

    async def one() -> None:
        async with semaphore:
            http.cookies.clear()
            response = await http.post("/authorize", data=params)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    await asyncio.gather(*(one() for _ in range(count)))
    return statuses


async def test_two_thousand_requests_with_a_15_kb_state_keep_nothing(
    make_http: HttpFactory, store: Store
) -> None:
    http = await make_http(rate_limit_per_minute=60)
    client_id = (await register(http))["client_id"]
    before = len(await stored_keys(store, "auth:pending:")), len(await stored_keys(store, "auth:session:"))

    statuses = await flood(http, authorize_params(client_id, new_pkce(), state="x" * 15_000), ATTACK_REQUESTS)

    assert statuses == {400: 60, 429: ATTACK_REQUESTS - 60}
    after = len(await stored_keys(store, "auth:pending:")), len(await stored_keys(store, "auth:session:"))
    assert after == before


async def test_valid_requests_from_one_address_are_kept_only_up_to_its_limit(
    make_http: HttpFactory, store: Store
) -> None:
    http = await make_http(rate_limit_per_minute=60)
    client_id = (await register(http))["client_id"]
    before = len(await stored_keys(store, "auth:pending:"))

    statuses = await flood(http, authorize_params(client_id, new_pkce(), state="s" * 2_000), 300)

    assert statuses == {303: 60, 429: 240}  # on to the login page, or refused
    assert len(await stored_keys(store, "auth:pending:")) - before == 60
    refused = await http.post("/authorize", data=authorize_params(client_id, new_pkce()))
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert "location" not in refused.headers


@pytest.mark.parametrize("parameter", ["state", "scope", "resource", "code_challenge", "nonce", "client_id"])
async def test_no_parameter_may_be_longer_than_2000_characters(
    http: httpx2.AsyncClient, parameter: str
) -> None:
    client_id = (await register(http))["client_id"]
    params = {**authorize_params(client_id, new_pkce()), parameter: "a" * 2_001}
    for response in (await http.get("/authorize", params=params), await http.post("/authorize", data=params)):
        assert response.status_code == 400, response.text
        assert "location" not in response.headers
        assert f"The parameter {parameter} is longer than 2000 characters" in response.text


async def test_a_2000_character_state_still_travels_byte_exact(http: httpx2.AsyncClient) -> None:
    client_id = (await register(http))["client_id"]
    state = "\u00e9 %20&=" * 285  # 1,995 characters, most of them needing escapes
    done = await run_flow(http, authorize_params(client_id, new_pkce(), state=state))
    assert callback_dict(done.headers["location"])["state"] == state


async def test_a_query_with_thousands_of_parameters_is_refused(http: httpx2.AsyncClient) -> None:
    client_id = (await register(http))["client_id"]
    junk = "&".join(f"p{n}=x" for n in range(2_000))
    query = httpx2.QueryParams(authorize_params(client_id, new_pkce()))
    response = await http.get(f"/authorize?{query}&{junk}")
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_one_browser_session_holds_at_most_20_open_requests(http: httpx2.AsyncClient) -> None:
    client_id = (await register(http))["client_id"]
    logins = []
    for _ in range(MAX_PENDING_PER_SESSION):  # one browser: the cookie jar keeps its session
        started = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
        assert started.status_code == 302
        logins.append(started.headers["location"])
    refused = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= PENDING_TTL
    assert "location" not in refused.headers

    # Answering one of them gives its place back.
    consent = await sign_in(http, logins[0])
    answered = await decide(http, consent.headers["location"])
    assert "code" in callback_dict(answered.headers["location"])
    again = await http.get("/authorize", params=authorize_params(client_id, new_pkce()))
    assert again.status_code == 302


async def test_a_browser_that_finishes_its_authorizations_is_never_limited(http: httpx2.AsyncClient) -> None:
    client_id = (await register(http))["client_id"]
    for _ in range(MAX_PENDING_PER_SESSION + 5):
        done = await run_flow(http, authorize_params(client_id, new_pkce()))
        assert "code" in callback_dict(done.headers["location"])


async def test_a_pending_request_and_its_anonymous_session_live_five_minutes(
    http: httpx2.AsyncClient, store: Store
) -> None:
    client_id = (await register(http))["client_id"]
    state = f"lifetime-{id(http)}"
    response = await http.get("/authorize", params=authorize_params(client_id, new_pkce(), state=state))
    assert response.status_code == 302
    request_id = httpx2.URL(response.headers["location"]).params["request"]
    pending_ttl = await store.ttl(pending_key(request_id))
    session_ttl = await store.ttl(session_key(http.cookies["mcp_as_session"]))
    assert pending_ttl is not None
    assert 280 < pending_ttl <= PENDING_TTL == 300
    assert session_ttl is not None
    assert 280 < session_ttl <= 300
