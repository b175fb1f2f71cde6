"""RS-10..RS-20, RS-30..RS-36, TR-06: who gets a 401, a 400 or a 503, and what it says."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any

import httpx2
import pytest

from tests.e2e.oauth_flow import mint, revoke
from tests.fixtures.waits import eventually
from tests.integration.rs.conftest import (
    API_KEYS,
    FORGEABLE_KINDS,
    LEGACY,
    MODERN,
    TOKEN_KINDS,
    USER_PASSWORD,
    Mcp,
    Rs,
    StartRs,
    bearer,
    initialize_body,
    legacy_headers,
    message,
    modern_request,
)
from tests.integration.rs.harness import LocalServer, MiniAuthorizationServer
from tests.integration.rs.test_protected_resource_metadata import challenge_params

BASELINE = "mcp:tools:read mcp:resources:read mcp:prompts:read notes:read"


def assert_no_token_challenge(rs: Rs, header: str) -> None:
    assert header.startswith("Bearer ")
    assert "error=" not in header
    params = challenge_params(header)
    assert params["resource_metadata"] == f"{rs.url}/.well-known/oauth-protected-resource/mcp"
    assert params["scope"] == BASELINE
    assert header.count("scope=") == 1


def assert_invalid_token(response_status: int, header: str, body: dict[str, object]) -> None:
    assert response_status == 401
    params = challenge_params(header)
    assert params["error"] == "invalid_token"
    assert "resource_metadata" in params
    assert set(body) == {"error", "error_description"}
    assert body["error"] == "invalid_token"


@pytest.mark.parametrize("revision", [LEGACY, MODERN])
async def test_a_request_without_a_token_gets_401_with_metadata_and_scope_but_no_error(
    rs: Rs, revision: str
) -> None:
    if revision == LEGACY:
        response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(None))
    else:
        body, headers = modern_request("server/discover")
        response = await rs.http.post("/mcp", json=body, headers=headers)
    assert response.status_code == 401
    assert_no_token_challenge(rs, response.headers["www-authenticate"])


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_streams_and_session_deletes_need_a_token_too(rs: Rs, method: str) -> None:
    response = await rs.http.request(method, "/mcp", headers={"accept": "text/event-stream"})
    assert response.status_code == 401
    assert_no_token_challenge(rs, response.headers["www-authenticate"])


async def test_the_legacy_sse_transport_needs_a_token(rs: Rs) -> None:
    response = await rs.http.get("/sse", headers={"accept": "text/event-stream"})
    assert response.status_code == 401
    assert_no_token_challenge(rs, response.headers["www-authenticate"])
    post = await rs.http.post(
        "/messages/?session_id=" + "0" * 32, json={"jsonrpc": "2.0", "method": "ping", "id": 1}
    )
    assert post.status_code == 401


BAD_TOKENS: dict[str, dict[str, Any] | None] = {
    "garbage": None,
    "expired": {"exp": "past"},
    "other-audience": {"aud": "https://other.example/mcp"},
    "no-audience": {"aud": None},
    "foreign-issuer": {"iss": "https://evil.example"},
}


@pytest.mark.parametrize(
    ("rs", "claims"),
    [
        pytest.param(kind, claims, id=f"{kind}-{name}")
        for kind in TOKEN_KINDS
        for name, claims in BAD_TOKENS.items()
        if claims is None or kind in FORGEABLE_KINDS  # the real AS forges nothing; see conftest
    ],
    indirect=["rs"],
)
async def test_bad_tokens_get_401_invalid_token(rs: Rs, mcp: Mcp, claims: dict[str, Any] | None) -> None:
    if claims is None:
        token = "garbage"
    else:
        if claims.get("exp") == "past":
            claims = {**claims, "exp": int(time.time()) - 120}
        token = await rs.token("alice", **claims)
    if mcp.revision == MODERN:
        response = await mcp.post("tools/list", None, None, headers=bearer(token))
    else:
        response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
    assert_invalid_token(response.status_code, response.headers["www-authenticate"], response.json())


async def test_a_revoked_token_stops_working_within_the_cache_bound(start_rs: StartRs) -> None:
    rs = await start_rs("introspection", introspection_cache_ttl=0)
    token = await rs.token("alice")
    ok = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
    assert ok.status_code == 200
    rs.authority.revoke(token)
    revoked = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
    assert_invalid_token(revoked.status_code, revoked.headers["www-authenticate"], revoked.json())


async def test_internal_mode_refuses_a_revoked_token_on_the_very_next_request(start_rs: StartRs) -> None:
    rs = await start_rs("internal")
    grant = await asyncio.to_thread(mint, rs.mcp_url, scope="mcp:tools:read", user=("alice", USER_PASSWORD))
    token = grant.tokens.access_token
    session = await Mcp(rs.http, LEGACY).session(token)
    await asyncio.to_thread(revoke, grant.discovery, grant.client.client_id, token)
    ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
    response = await rs.http.post("/mcp", json=ping, headers=legacy_headers(token, session))
    assert_invalid_token(response.status_code, response.headers["www-authenticate"], response.json())


async def test_internal_mode_refuses_an_expired_token(start_rs: StartRs) -> None:
    rs = await start_rs("internal", access_token_ttl=1)
    token = await rs.token("alice")

    async def refused() -> httpx2.Response | None:
        response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
        return response if response.status_code == 401 else None

    response = await eventually(refused, "the one-second token to be refused", every=0.25)
    assert_invalid_token(response.status_code, response.headers["www-authenticate"], response.json())


async def test_a_jwt_with_one_flipped_signature_byte_or_a_foreign_key_is_rejected(start_rs: StartRs) -> None:
    rs = await start_rs("jwt")
    token = await rs.token("alice")
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    flipped = ".".join([head, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])
    foreign = rs.authority.mint_jwt("alice", ["mcp:tools:read"], key=MiniAuthorizationServer.new_key("key-1"))
    for bad in (flipped, foreign):
        response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(bad))
        assert_invalid_token(response.status_code, response.headers["www-authenticate"], response.json())


async def test_tokens_that_are_not_access_tokens_are_rejected(start_rs: StartRs) -> None:
    jwt_rs = await start_rs("jwt")
    id_token = jwt_rs.authority.mint_jwt("alice", [], header={"typ": "JWT"})
    response = await jwt_rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(id_token))
    assert response.status_code == 401
    opaque_rs = await start_rs("introspection")
    refresh_token = await opaque_rs.token("alice")
    opaque_rs.authority.opaque[refresh_token]["token_type"] = "refresh_token"
    response = await opaque_rs.http.post(
        "/mcp", json=initialize_body(), headers=legacy_headers(refresh_token)
    )
    assert response.status_code == 401


async def test_a_token_in_the_query_string_is_ignored(rs: Rs) -> None:
    token = await rs.token("alice")
    response = await rs.http.post(
        f"/mcp?access_token={token}", json=initialize_body(), headers=legacy_headers(None)
    )
    assert response.status_code == 401
    assert_no_token_challenge(rs, response.headers["www-authenticate"])


async def test_a_token_put_in_the_url_never_reaches_the_access_log(
    rs: Rs, caplog: pytest.LogCaptureFixture
) -> None:
    token = await rs.token("alice")
    logged = LocalServer.reserve()
    await logged.start(rs.server_app, access_log=True, lifespan=False)
    access = logging.getLogger("uvicorn.access")  # it does not propagate to the root logger
    access.addHandler(caplog.handler)
    try:
        async with httpx2.AsyncClient(base_url=logged.url) as http:
            response = await http.post(
                f"/mcp?x=1&access_token={token}", json=initialize_body(), headers=legacy_headers(None)
            )
        assert response.status_code == 401
    finally:
        access.removeHandler(caplog.handler)
        await logged.stop()
    lines = [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]
    assert any("/mcp?x=1&access_token=redacted" in line for line in lines), lines
    assert not any(token[:20] in line for line in lines)


async def test_the_bearer_scheme_name_is_case_insensitive(rs: Rs) -> None:
    token = await rs.token("alice")
    headers = {**legacy_headers(None), "authorization": f"bEaReR {token}"}
    response = await rs.http.post("/mcp", json=initialize_body(), headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            [("authorization", "Bearer a"), ("authorization", "Bearer b")], id="two-authorization-headers"
        ),
        pytest.param(
            [("authorization", "Bearer {token}"), ("x-api-key", API_KEYS["alice"])], id="header-and-api-key"
        ),
        pytest.param([("authorization", "Bearer")], id="bearer-without-token"),
        pytest.param([("authorization", "Bearer not a token")], id="spaces-in-token"),
        pytest.param([("authorization", "Bearer tok<en>")], id="non-b64token-characters"),
    ],
)
async def test_malformed_authorization_gets_400_invalid_request(
    rs: Rs, headers: list[tuple[str, str]]
) -> None:
    token = await rs.token("alice")
    raw = [("accept", "application/json, text/event-stream"), ("content-type", "application/json")]
    raw += [(name, value.replace("{token}", token)) for name, value in headers]
    response = await rs.http.post("/mcp", content=json.dumps(initialize_body()).encode(), headers=raw)
    assert response.status_code == 400
    assert challenge_params(response.headers["www-authenticate"])["error"] == "invalid_request"
    assert response.json()["error"] == "invalid_request"


async def test_a_token_in_the_header_and_in_a_form_body_gets_400(rs: Rs) -> None:
    token = await rs.token("alice")
    response = await rs.http.post(
        "/mcp",
        content=f"access_token={token}".encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_session_never_replaces_the_token(rs: Rs) -> None:
    token = await rs.token("alice")
    session = await Mcp(rs.http, LEGACY).session(token)
    ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
    without = await rs.http.post("/mcp", json=ping, headers=legacy_headers(None, session))
    assert without.status_code == 401
    assert_no_token_challenge(rs, without.headers["www-authenticate"])
    expired = (
        "no-longer-valid"
        if rs.token_kind == "internal"
        else await rs.token("alice", exp=int(time.time()) - 120)
    )
    with_expired = await rs.http.post("/mcp", json=ping, headers=legacy_headers(expired, session))
    assert with_expired.status_code == 401
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (
        await rs.http.post("/mcp", json=notification, headers=legacy_headers(None, session))
    ).status_code == 401
    stream = await rs.http.get("/mcp", headers={"accept": "text/event-stream", "mcp-session-id": session})
    assert stream.status_code == 401
    still = await rs.http.post("/mcp", json=ping, headers=legacy_headers(token, session))
    assert still.status_code == 200
    assert message(still)["result"] == {}


async def test_an_unreachable_authorization_server_gets_503_with_retry_after(start_rs: StartRs) -> None:
    rs = await start_rs("introspection")
    token = await rs.token("alice")
    await rs.authority_server.stop()
    response = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(token))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "temporarily_unavailable"
    # API keys do not depend on the authorization server
    key = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(API_KEYS["alice"]))
    assert key.status_code == 200


async def test_error_bodies_carry_no_internals_and_tokens_are_never_logged(
    rs: Rs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = await rs.token("alice", ["notes:read"])
    bad = "y" * 43 if rs.token_kind == "internal" else await rs.token("alice", exp=int(time.time()) - 120)
    responses = [
        await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(None)),
        await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(bad)),
        await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers("x" * 40)),
        await Mcp(rs.http, MODERN).post("tools/list", None, good),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401, 403]
    for response in responses:
        body = response.json()
        assert set(body) <= {"error", "error_description", "scope"}
        assert "Traceback" not in response.text
        assert "tools" not in body
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (good, bad, "x" * 40):
        assert secret not in logged
        assert secret[:16] not in logged


async def test_api_keys_work_in_the_bearer_header_and_in_x_api_key(rs: Rs) -> None:
    for headers in (bearer(API_KEYS["bob"]), {"x-api-key": API_KEYS["bob"]}):
        response = await rs.http.post(
            "/mcp", json=initialize_body(), headers={**legacy_headers(None), **headers}
        )
        assert response.status_code == 200, response.text
    unknown = await rs.http.post(
        "/mcp", json=initialize_body(), headers={**legacy_headers(None), "x-api-key": "nope"}
    )
    assert unknown.status_code == 401
    assert challenge_params(unknown.headers["www-authenticate"])["error"] == "invalid_token"
