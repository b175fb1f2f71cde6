"""A registered client holding someone else's token string learns nothing about it.

The attack: a client (any registered client: registration is open) got hold of a token string, a
leaked refresh token say, and asks the authorization server about it without using it. /revoke
answered 400 `unauthorized_client` for a live token of another client and 200 for an unknown
one: a liveness oracle that also said "not yours". /token's refresh said "the refresh token was
issued to another client" for a live one and "invalid, expired or revoked" otherwise. Now both
answers are byte for byte those of an unknown token, and the token is left as it was (its owner
keeps using it). Every deployment (internal/external x memory/redis).
"""

from __future__ import annotations

import httpx2

from shared.settings import Settings
from shared.storage.base import Store
from tests.integration.auth.helpers import add_client, is_active, refresh, tokens_for

UNKNOWN = "aGVsbG8td29ybGQtdGhpcy1pcy1ub3QtYS10b2tlbg"


def visible(response: httpx2.Response) -> tuple[int, bytes, dict[str, str]]:
    """What a caller can tell apart: status, body and headers (but the per-response ones)."""
    headers = {
        name: value for name, value in response.headers.items() if name not in ("date", "x-request-id")
    }
    return response.status_code, response.content, headers


async def test_revoking_another_clients_live_token_answers_as_an_unknown_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    owner, attacker = await add_client(store), await add_client(store, confidential=True)
    tokens = await tokens_for(http, store, settings, owner)

    unknown = await http.post("/revoke", data={"token": UNKNOWN, **attacker.auth()})
    for token, hint in (
        (tokens["refresh_token"], "refresh_token"),
        (tokens["access_token"], "access_token"),
        (tokens["refresh_token"], "access_token"),
    ):
        live = await http.post("/revoke", data={"token": token, "token_type_hint": hint, **attacker.auth()})
        assert visible(live) == visible(unknown)
        assert live.status_code == 200

    assert await is_active(http, tokens["access_token"])
    assert (await refresh(http, tokens["refresh_token"], owner)).status_code == 200


async def test_refreshing_with_another_clients_live_refresh_token_answers_as_an_unknown_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    owner, attacker = await add_client(store), await add_client(store)
    tokens = await tokens_for(http, store, settings, owner)

    unknown = await refresh(http, UNKNOWN, attacker)
    live = await refresh(http, tokens["refresh_token"], attacker)

    assert visible(live) == visible(unknown)
    assert live.json()["error"] == "invalid_grant"
    assert (await refresh(http, tokens["refresh_token"], owner)).status_code == 200
