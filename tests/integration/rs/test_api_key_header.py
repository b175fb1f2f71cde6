"""API_KEY_HEADER: static API keys in the header a deployment chooses (`x-scope3-api-key`).

`Authorization: Bearer <key>` keeps working; the chosen header replaces `X-API-Key`; a key sent
both ways is 400; keys are still looked up by their SHA-256 digest (api_keys.py). In every token
kind, since API keys sit in front of every validator.
"""

from __future__ import annotations

import pytest

from shared.settings import SettingsError, load_settings
from tests.integration.rs.conftest import (
    ALLOWED_ORIGIN,
    API_KEYS,
    TOKEN_KINDS,
    StartRs,
    initialize_body,
    legacy_headers,
)
from tests.integration.rs.test_protected_resource_metadata import challenge_params

HEADER = "x-scope3-api-key"


@pytest.mark.parametrize("kind", TOKEN_KINDS)
async def test_a_key_in_the_chosen_header_or_the_bearer_header_is_accepted(
    start_rs: StartRs, kind: str
) -> None:
    rs = await start_rs(kind, api_key_header=HEADER)
    for headers in (
        {HEADER: API_KEYS["alice"]},
        {"X-Scope3-API-Key": API_KEYS["alice"]},  # header names are case-insensitive
        {"authorization": f"Bearer {API_KEYS['alice']}"},
    ):
        response = await rs.http.post(
            "/mcp", json=initialize_body(), headers={**legacy_headers(None), **headers}
        )
        assert response.status_code == 200, (headers, response.text)

    unknown = await rs.http.post(
        "/mcp", json=initialize_body(), headers={**legacy_headers(None), HEADER: "nope"}
    )
    assert unknown.status_code == 401
    assert challenge_params(unknown.headers["www-authenticate"])["error"] == "invalid_token"


@pytest.mark.parametrize("kind", ["jwt", "internal"])
async def test_x_api_key_is_no_credential_once_another_header_is_chosen(start_rs: StartRs, kind: str) -> None:
    rs = await start_rs(kind, api_key_header=HEADER)
    response = await rs.http.post(
        "/mcp", json=initialize_body(), headers={**legacy_headers(None), "x-api-key": API_KEYS["alice"]}
    )
    assert response.status_code == 401
    assert "error" not in challenge_params(response.headers["www-authenticate"]), "as if nothing was sent"


@pytest.mark.parametrize("kind", ["jwt", "internal"])
async def test_a_key_sent_two_ways_or_empty_is_400(start_rs: StartRs, kind: str) -> None:
    rs = await start_rs(kind, api_key_header=HEADER)
    key = API_KEYS["alice"]
    for raw in (
        [("authorization", f"Bearer {key}"), (HEADER, key)],
        [(HEADER, key), (HEADER, key)],
        [(HEADER, "")],
    ):
        headers = [
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            *raw,
        ]
        response = await rs.http.post("/mcp", json=initialize_body(), headers=headers)
        assert response.status_code == 400, (raw, response.text)
        assert response.json()["error"] == "invalid_request"


async def test_browsers_may_send_the_chosen_header(start_rs: StartRs) -> None:
    rs = await start_rs("jwt", api_key_header=HEADER)
    preflight = await rs.http.options(
        "/mcp",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": HEADER,
        },
    )
    assert preflight.status_code == 204
    allowed = [name.strip().lower() for name in preflight.headers["access-control-allow-headers"].split(",")]
    assert HEADER in allowed
    assert "x-api-key" not in allowed


@pytest.mark.parametrize(
    "name", ["Authorization", "cookie", "Mcp-Session-Id", "mcp-param-x", "Host", "x api key", "", "DPoP"]
)
def test_a_header_that_already_means_something_cannot_carry_api_keys(name: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, api_key_header=name)
    assert "API_KEY_HEADER" in str(refused.value)
