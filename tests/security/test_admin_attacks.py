"""Attacks on the admin API (auth_server/admin/api.py, docs/operations.md "The admin surface").

Each attack runs against real servers in the four deployments (internal: the AS inside the MCP
app; external: the standalone AS; on memory and on Redis): no credential, a wrong one, a short one
whose digest is configured, the token anywhere but the Authorization header, a signed-in browser
with another site's form (CSRF), a cross-origin script (CORS), guessing past the rate limit,
hostile identifiers and bodies, and the API itself when no admin token is configured. Two checks
cannot be made over the network from here: a caller that is not on loopback (every test address is
127.x; that one runs the same app in process with a non-loopback peer address) and the
constant-time comparison (timing is not asserted; the comparisons made are).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import httpx2
import pytest

from auth_server import crypto
from auth_server.admin import credentials as admin_credentials
from auth_server.admin.credentials import AdminCredentials, new_admin_token
from mcp_server.app import create_app
from shared.storage.base import Store
from shared.storage.memory import MemoryStore
from tests.integration.auth.account_helpers import sign_in_to_account
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, HttpFactory
from tests.integration.auth.helpers import add_client, is_active, make_settings
from tests.integration.auth.test_admin_api import ADMIN, ADMIN_TOKEN, BEARER

# In every deployment: the admin API is served by both modes' apps, and guessing is counted in the store.
DEPLOYMENTS = ALL_DEPLOYMENTS

ADMIN_PATHS = [
    ("GET", "/admin/clients"),
    ("GET", "/admin/clients/anything"),
    ("PATCH", "/admin/clients/anything"),
    ("DELETE", "/admin/clients/anything"),
    ("GET", "/admin/grants?subject=demo"),
    ("DELETE", "/admin/grants?subject=demo"),
    ("DELETE", "/admin/grants/some-grant"),
    ("GET", "/admin/signing-keys"),
    ("POST", "/admin/signing-keys"),
    ("POST", "/admin/purge"),
    ("GET", "/admin"),
    ("PUT", "/admin/not-an-endpoint"),
]


def assert_refused(response: httpx2.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    return body


async def test_without_a_credential_every_admin_path_and_method_is_401_with_a_bearer_challenge(
    make_http: HttpFactory,
) -> None:
    http = await make_http(**ADMIN)
    for method, path in ADMIN_PATHS:
        response = await http.request(method, path, json={"disabled": True} if method == "PATCH" else None)
        assert_refused(response, 401, "unauthorized")
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer realm=")
        assert "error=" not in challenge  # RFC 6750 section 3.1: no error code without credentials


async def test_a_wrong_token_is_401_invalid_token_audited_and_changes_nothing(
    make_http: HttpFactory, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    http = await make_http(**ADMIN)
    client = await add_client(store)
    wrong = new_admin_token()[0]
    caplog.set_level("INFO", logger="auth_server.audit")
    for header in (
        f"Bearer {wrong}",
        f"bearer {ADMIN_TOKEN}x",
        f"Basic {ADMIN_TOKEN}",
        "Bearer",
        f"Bearer  {wrong} x",
    ):
        response = await http.patch(
            f"/admin/clients/{client.client_id}", json={"disabled": True}, headers={"Authorization": header}
        )
        body = assert_refused(response, 401, "invalid_token")
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert "disabled" not in json.dumps(body)
    assert await store.get(f"auth:client-disabled:{crypto.digest(client.client_id)}") is None
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "auth_server.audit"]
    assert [e["event"] for e in events].count("admin_auth_failed") == 5
    assert wrong not in caplog.text
    assert ADMIN_TOKEN not in caplog.text


async def test_two_authorization_headers_are_not_an_admin_token_even_if_one_is(
    make_http: HttpFactory,
) -> None:
    http = await make_http(**ADMIN)
    twice = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Authorization", "Bearer x")]
    assert_refused(await http.get("/admin/clients", headers=twice), 401, "invalid_token")


async def test_a_short_token_is_refused_even_when_its_digest_is_configured(make_http: HttpFactory) -> None:
    short = "correct horse battery staple"  # 28 characters: a password, not a token
    http = await make_http(admin_token_sha256=[crypto.digest(short), crypto.digest(ADMIN_TOKEN)])
    assert_refused(
        await http.get("/admin/clients", headers={"Authorization": f"Bearer {short}"}), 401, "invalid_token"
    )
    assert (await http.get("/admin/clients", headers=BEARER)).status_code == 200


async def test_the_admin_token_is_read_from_the_authorization_header_only(make_http: HttpFactory) -> None:
    http = await make_http(**ADMIN)
    for attempt in (
        {"params": {"access_token": ADMIN_TOKEN}},
        {"headers": {"Cookie": f"admin_token={ADMIN_TOKEN}; Authorization=Bearer {ADMIN_TOKEN}"}},
        {"headers": {"X-Admin-Token": ADMIN_TOKEN, "X-API-Key": ADMIN_TOKEN}},
    ):
        assert_refused(await http.get("/admin/clients", **attempt), 401, "unauthorized")
    form = {"access_token": ADMIN_TOKEN, "token": ADMIN_TOKEN}
    assert_refused(await http.post("/admin/purge", data=form), 401, "unauthorized")


async def test_another_sites_form_in_a_signed_in_browser_cannot_act_there_is_no_cookie_to_ride(
    make_http: HttpFactory,
) -> None:
    """CSRF: a page elsewhere auto-submits a form to the admin API from the browser of someone
    signed in at this AS. The browser sends its cookies and an Origin, never an Authorization
    header it was not told to send, so the request is anonymous."""
    browser = await make_http(**ADMIN)
    signed_in = await sign_in_to_account(browser)
    assert signed_in.status_code == 303, signed_in.text
    assert browser.cookies, "the browser holds a sign-in cookie"
    evil = {"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
    for path in ("/admin/purge", "/admin/signing-keys"):
        assert_refused(await browser.post(path, content=b"limit=1000", headers=evil), 401, "unauthorized")


async def test_a_cross_origin_script_gets_no_cors_answer_not_even_to_a_preflight(
    make_http: HttpFactory,
) -> None:
    http = await make_http(**ADMIN)
    preflight = await http.options(
        "/admin/clients/x",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert_refused(preflight, 401, "unauthorized")
    readable = await http.get("/admin/clients", headers={**BEARER, "Origin": "https://evil.example"})
    assert readable.status_code == 200
    assert not any(name.lower().startswith("access-control-") for name in readable.headers)


async def test_guessing_admin_tokens_is_rate_limited_per_address_before_any_token_is_checked(
    make_http: HttpFactory, caplog: pytest.LogCaptureFixture
) -> None:
    http = await make_http(**ADMIN, rate_limit_per_minute=5)
    for _ in range(5):
        wrong = {"Authorization": f"Bearer {new_admin_token()[0]}"}
        assert_refused(await http.get("/admin/clients", headers=wrong), 401, "invalid_token")
    limited = await http.get("/admin/clients", headers=BEARER)  # even the right token, from there
    assert_refused(limited, 429, "temporarily_unavailable")
    assert int(limited.headers["retry-after"]) > 0
    elsewhere = await make_http(**ADMIN, rate_limit_per_minute=5)  # another address: unaffected
    assert (await elsewhere.get("/admin/clients", headers=BEARER)).status_code == 200


async def test_hostile_identifiers_and_bodies_get_json_errors_never_a_500(
    make_http: HttpFactory, store: Store
) -> None:
    http = await make_http(**ADMIN)
    client = await add_client(store)
    path = f"/admin/clients/{client.client_id}"
    attempts: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/admin/clients/" + "a" * 2001, {}, 400),
        ("GET", "/admin/clients/..%2F..%2Fauth%3Ajwks", {}, 404),
        ("DELETE", "/admin/grants/%7Bx%7D", {}, 404),
        ("GET", "/admin/grants?subject=a&subject=b", {}, 400),
        ("GET", "/admin/grants?client_id=" + "c" * 2001, {}, 400),
        (
            "PATCH",
            path,
            {"content": b'{"disabled": "yes"}', "headers": {"content-type": "application/json"}},
            400,
        ),
        (
            "PATCH",
            path,
            {"content": b'{"disabled": true, "x": 1}', "headers": {"content-type": "application/json"}},
            400,
        ),
        ("PATCH", path, {"content": b"[" * 5000, "headers": {"content-type": "application/json"}}, 413),
        (
            "PATCH",
            path,
            {"content": b"[" * 1000 + b"]" * 1000, "headers": {"content-type": "application/json"}},
            400,
        ),
        (
            "PATCH",
            path,
            {"content": b"disabled=true", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            400,
        ),
        (
            "PATCH",
            path,
            {"content": b'{"disabled": NaN}', "headers": {"content-type": "application/json"}},
            400,
        ),
        ("POST", "/admin/purge", {"json": {"limit": 10**9}}, 400),
        ("POST", "/admin/purge", {"json": {"after": "x" * 3000}}, 400),
    ]
    for method, target, options, status in attempts:
        response = await http.request(
            method, target, headers={**BEARER, **options.pop("headers", {})}, **options
        )
        assert response.status_code == status, (method, target, response.status_code, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()
    assert (await http.get(path, headers=BEARER)).json()["disabled"] is False


async def test_without_an_admin_token_configured_there_is_no_admin_api_at_all(
    http: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="auth_server.audit")
    for method, path in ADMIN_PATHS:
        response = await http.request(method, path, headers=BEARER)
        assert response.status_code in (404, 405), (method, path, response.status_code)
        assert "admin" not in response.text.lower()
    assert "admin_auth_failed" not in caplog.text


async def test_configured_digests_are_never_the_token_itself() -> None:
    with pytest.raises(ValueError, match="SHA-256 hex digest"):
        make_settings(admin_token_sha256=[ADMIN_TOKEN])


async def test_a_caller_beyond_loopback_is_refused_unless_admin_api_remote_allows_it(store: Store) -> None:
    """The one test not over a socket: every address a test can bind is loopback, so the real app
    is called in process with the peer address a reverse proxy's client would have."""
    for remote, expected in ((False, 403), (True, 200)):
        app = create_app(make_settings(**ADMIN, admin_api_remote=remote), MemoryStore())
        transport = httpx2.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:3232") as http:
            response = await http.get("/admin/clients", headers=BEARER)
        assert response.status_code == expected, response.text
        if expected == 403:
            assert "ADMIN_API_REMOTE" in response.json()["error_description"]


def test_the_comparison_hashes_first_and_compares_every_configured_digest_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Timing is not measured (docs/performance.md keeps numbers out of tests); what makes it
    constant is: whatever is presented, the same number of `hmac.compare_digest` calls, each on two
    64-character digests, none skipped after a match."""
    digests = [new_admin_token()[1] for _ in range(3)]
    calls: list[tuple[int, int]] = []

    def recording(a: str, b: str) -> bool:
        calls.append((len(a), len(b)))
        return hmac.compare_digest(a.encode(), b.encode())

    monkeypatch.setattr(admin_credentials.crypto, "constant_time_equals", recording)
    token, digest = new_admin_token()
    credentials = AdminCredentials([*digests[:1], digest, *digests[1:]])
    for presented in (token, "x", "y" * 10_000, token[:-1] + "A", ""):
        calls.clear()
        verified = credentials.verify(presented)
        assert (verified is not None) == (presented == token)
        assert calls == [(64, 64)] * 4, presented[:10]


async def test_an_admin_token_grants_nothing_at_the_oauth_and_mcp_endpoints(make_http: HttpFactory) -> None:
    http = await make_http(**ADMIN)
    assert (await http.post("/introspect", data={"token": "x"}, headers=BEARER)).status_code == 401
    mcp = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=BEARER)
    assert mcp.status_code in (401, 404)  # 404: external mode serves no /mcp
    assert not await is_active(http, ADMIN_TOKEN)
