"""TR-01, TR-02, RS-07: Origin and Host checks before authentication, and CORS for browsers."""

from __future__ import annotations

import pytest

from tests.integration.rs.conftest import (
    ALLOWED_ORIGIN,
    API_KEYS,
    Rs,
    StartRs,
    initialize_body,
    legacy_headers,
)


async def test_a_foreign_origin_gets_403_with_a_json_rpc_error_even_with_a_valid_token(rs: Rs) -> None:
    headers = {**legacy_headers(await rs.token("alice")), "origin": "https://evil.example"}
    response = await rs.http.post("/mcp", json=initialize_body(), headers=headers)
    assert response.status_code == 403
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] is None
    assert "error" in body
    assert "access-control-allow-origin" not in response.headers


async def test_the_origin_is_checked_before_authentication(rs: Rs) -> None:
    response = await rs.http.post(
        "/mcp", json=initialize_body(), headers={**legacy_headers(None), "origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, "http://localhost:6274", "http://127.0.0.1:5173", None])
async def test_allowed_loopback_and_absent_origins_pass(rs: Rs, origin: str | None) -> None:
    headers = legacy_headers(await rs.token("alice"))
    if origin is not None:
        headers["origin"] = origin
    response = await rs.http.post("/mcp", json=initialize_body(), headers=headers)
    assert response.status_code == 200, response.text
    if origin is not None:
        assert response.headers["access-control-allow-origin"] == origin
        exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
        assert {"www-authenticate", "mcp-session-id"} <= exposed
        assert "origin" in response.headers["vary"].lower()


async def test_a_browser_can_read_the_401_challenge(rs: Rs) -> None:
    response = await rs.http.post(
        "/mcp", json=initialize_body(), headers={**legacy_headers(None), "origin": ALLOWED_ORIGIN}
    )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "www-authenticate" in response.headers["access-control-expose-headers"].lower()


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(rs: Rs) -> None:
    response = await rs.http.options(
        "/mcp",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, mcp-protocol-version, "
            "mcp-param-region",
        },
    )
    assert 200 <= response.status_code < 300
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {
        "authorization",
        "content-type",
        "mcp-session-id",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "last-event-id",
        "mcp-param-region",
    } <= allowed
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "DELETE"} <= methods


async def test_a_preflight_from_a_foreign_origin_is_refused(rs: Rs) -> None:
    response = await rs.http.options(
        "/mcp", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:80", "attacker.test:3232"])
async def test_a_foreign_host_header_is_refused_dns_rebinding(rs: Rs, host: str) -> None:
    headers = {**legacy_headers(API_KEYS["alice"]), "host": host, "origin": f"http://{host}"}
    response = await rs.http.post("/mcp", json=initialize_body(), headers=headers)
    assert 400 <= response.status_code < 500
    assert response.status_code == 421
    no_origin = {**legacy_headers(API_KEYS["alice"]), "host": host}
    assert (await rs.http.post("/mcp", json=initialize_body(), headers=no_origin)).status_code == 421


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
async def test_loopback_host_headers_are_accepted_when_bound_to_loopback(rs: Rs, host: str) -> None:
    headers = {**legacy_headers(API_KEYS["alice"]), "host": f"{host}:{rs.server.port}"}
    response = await rs.http.post("/mcp", json=initialize_body(), headers=headers)
    assert response.status_code == 200, response.text


async def test_configured_hosts_and_the_legacy_sse_endpoint_follow_the_same_rules(start_rs: StartRs) -> None:
    rs = await start_rs("jwt", allowed_hosts=["mcp.example.com"], mcp_public_url="https://mcp.example.com")
    headers = {**legacy_headers(API_KEYS["alice"]), "host": "mcp.example.com"}
    assert (await rs.http.post("/mcp", json=initialize_body(), headers=headers)).status_code == 200
    evil = await rs.http.get(
        "/sse", headers={"accept": "text/event-stream", "origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    rebinding = await rs.http.get("/sse", headers={"accept": "text/event-stream", "host": "evil.example.com"})
    assert rebinding.status_code == 421


async def test_without_authentication_the_origin_check_still_applies(start_rs: StartRs) -> None:
    rs = await start_rs("jwt", auth_mode="none")
    ok = await rs.http.post("/mcp", json=initialize_body(), headers=legacy_headers(None))
    assert ok.status_code == 200
    evil = await rs.http.post(
        "/mcp", json=initialize_body(), headers={**legacy_headers(None), "origin": "https://evil.example"}
    )
    assert evil.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://[::1"},
        {"origin": "null"},
        {"origin": "http://localhost:99999"},
        {"host": "[::1"},
        {"host": ""},
        {"host": "localhost:notaport"},
        {"authorization": "Bearer \xff\xfe"},
        {"x-api-key": "\xff"},
        {"content-type": "application/x-www-form-urlencoded"},
    ],
)
async def test_garbage_headers_get_a_4xx_never_a_500(rs: Rs, headers: dict[str, str]) -> None:
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
    base = [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")]
    base = [pair for pair in base if pair[0] not in {name for name, _ in raw}]
    response = await rs.http.post("/mcp", content=b"{not json", headers=base + raw)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


async def test_a_body_that_is_not_json_rpc_is_answered_by_the_protocol_layer(rs: Rs) -> None:
    token = API_KEYS["alice"]
    for body in (b"{not json", b"[]", b"\xff\xfe", b"[" * 10_000, b'{"jsonrpc":"2.0","id":1,"method":7}'):
        response = await rs.http.post("/mcp", content=body, headers=legacy_headers(token))
        assert 400 <= response.status_code < 500, (body[:20], response.status_code, response.text)
