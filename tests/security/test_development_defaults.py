"""Development defaults never reach production (issue 9 item 1): attacks on a fork deployed as is.

Each attack is the configuration an operator would deploy with, started as the real process
(`python -m mcp_server`, `python -m auth_server`, or uvicorn serving the app factory, as a fork
would). Before the start-up check, each of these served: demo/demo and the published
introspection secret behind https://mcp.example.com, or AUTH_MODE=none to everyone through a
tunnel to 127.0.0.1. Now each refuses to start, before binding anything, with one line per
problem naming the setting and the fix, and no traceback.

Non-loopback HOST values are TEST-NET addresses (192.0.2.0/24): not an address of this machine,
so even a regression could not listen anywhere but loopback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from auth_server.users import scrypt_hash
from shared.startup import DEFAULT_INTROSPECTION_SECRET
from tests.e2e.servers import (
    PYTHON,
    Deployment,
    Mode,
    ServerProcess,
    build_deployment,
    clean_environ,
    free_port,
)

PUBLIC_MCP = "https://mcp.example.com"
PUBLIC_AS = "https://auth.example.com"
UNREACHABLE_HOST = "192.0.2.10"  # TEST-NET-1: "0.0.0.0" in spirit, but never bindable here
LONG_SECRET = "s" * 40


@functools.cache
def _users() -> str:
    return json.dumps({"alice": scrypt_hash("correct horse battery staple", n=2**10)})


def _refusal(process: ServerProcess) -> list[str]:
    code, output = process.run_expecting_refusal()
    assert code != 0
    assert "Traceback" not in output, output
    assert "Refusing to start" in output, output
    return output.splitlines()


def _refused(mode: Mode, env: dict[str, str], workdir: Path, *, process: str = "mcp_server") -> list[str]:
    deployment = build_deployment(mode, "memory", workdir, env=env)
    (chosen,) = [p for p in deployment.processes if p.name == process]
    return _refusal(chosen)


def _line(lines: list[str], setting: str) -> str:
    found = [line.strip() for line in lines if line.strip().startswith(f"{setting}:")]
    assert found, f"no line names {setting}:\n" + "\n".join(lines)
    return found[0]


def test_a_public_url_with_the_demo_user_is_refused(tmp_path: Path) -> None:
    lines = _refused("internal", {"MCP_PUBLIC_URL": PUBLIC_MCP}, tmp_path)
    demo = _line(lines, "AUTH_USERS")
    assert "demo / demo" in demo
    assert "scripts/hash-password.py" in demo


def test_a_public_host_with_the_demo_user_is_refused_before_binding(tmp_path: Path) -> None:
    lines = _refused("internal", {"HOST": UNREACHABLE_HOST}, tmp_path)
    assert any(f"HOST={UNREACHABLE_HOST} is not a loopback address" in line for line in lines)
    _line(lines, "AUTH_USERS")
    assert "MCP_PUBLIC_URL" in _line(lines, "MCP_PUBLIC_URL")


def test_the_published_introspection_secret_is_refused_on_both_external_processes(tmp_path: Path) -> None:
    env = {
        "MCP_PUBLIC_URL": PUBLIC_MCP,
        "AUTH_ISSUER_URL": PUBLIC_AS,
        "AUTH_USERS": _users(),
        "INTROSPECTION_CLIENT_SECRET": DEFAULT_INTROSPECTION_SECRET,
    }
    for process in ("auth_server", "mcp_server"):
        line = _line(
            _refused("external", env, tmp_path / process, process=process), "INTROSPECTION_CLIENT_SECRET"
        )
        assert "published development default" in line
        assert "secrets.token_urlsafe" in line


@pytest.mark.parametrize(
    ("setting", "env"),
    [
        ("INTROSPECTION_CLIENT_SECRET", {"INTROSPECTION_CLIENT_SECRET": "short-but-not-default"}),
        ("METRICS_TOKEN", {"METRICS_TOKEN": "scrape-me"}),
        (
            "AUTH_CLIENTS[0].client_secret",
            {
                "AUTH_CLIENTS": '[{"client_id": "job", "client_secret": "twenty-chars-secret!", '
                '"grant_types": ["client_credentials"], "redirect_uris": [], "scope": "mcp:tools:read"}]'
            },
        ),
    ],
)
def test_a_shared_secret_under_32_characters_is_refused_outside_development(
    tmp_path: Path, setting: str, env: dict[str, str]
) -> None:
    base = {"MCP_PUBLIC_URL": PUBLIC_MCP, "AUTH_ISSUER_URL": PUBLIC_AS, "AUTH_USERS": _users()}
    line = _line(_refused("external", {**base, **env}, tmp_path, process="auth_server"), setting)
    assert "shorter than 32 characters" in line


def test_no_authentication_behind_a_public_url_is_refused(tmp_path: Path) -> None:
    lines = _refused("none", {"MCP_PUBLIC_URL": PUBLIC_MCP}, tmp_path)
    assert "no authentication" in _line(lines, "AUTH_MODE")


def test_no_authentication_through_a_tunnel_to_loopback_is_refused(tmp_path: Path) -> None:
    # HOST stays 127.0.0.1: a tunnel (cloudflared, ngrok) forwards the public name to it.
    lines = _refused("none", {"ALLOWED_HOSTS": "random-words.trycloudflare.com"}, tmp_path)
    assert any("ALLOWED_HOSTS=random-words.trycloudflare.com" in line for line in lines)
    _line(lines, "AUTH_MODE")


def test_loopback_metadata_fetches_are_refused_outside_development(tmp_path: Path) -> None:
    env = {"MCP_PUBLIC_URL": PUBLIC_MCP, "AUTH_USERS": _users(), "CIMD_ALLOW_LOOPBACK": "true"}
    assert "false" in _line(_refused("internal", env, tmp_path), "CIMD_ALLOW_LOOPBACK")


def test_a_plain_http_public_url_is_refused(tmp_path: Path) -> None:
    env = {"MCP_PUBLIC_URL": "http://mcp.example.com", "AUTH_USERS": _users()}
    assert "plain http" in _line(_refused("internal", env, tmp_path), "MCP_PUBLIC_URL")


def test_a_plain_http_enterprise_identity_provider_or_downstream_api_is_refused(tmp_path: Path) -> None:
    """An attacker on the path to a plain-http provider would serve its own keys and mint ID-JAGs."""
    env = {
        "MCP_PUBLIC_URL": PUBLIC_MCP,
        "AUTH_USERS": _users(),
        "ENTERPRISE_IDP_ISSUERS": "http://idp.example.com",
        "TOKEN_EXCHANGE_AUDIENCES": "http://profile.example.com",
        "DOWNSTREAM_API_URL": "http://profile.example.com",
    }
    refusal = _refused("internal", env, tmp_path)
    assert "plain http" in _line(refusal, "ENTERPRISE_IDP_ISSUERS")
    assert "plain http" in _line(refusal, "DOWNSTREAM_API_URL")


@pytest.mark.parametrize(
    ("factory", "mode"),
    [("mcp_server.app:create_app", "internal"), ("auth_server.app:create_auth_app", "external")],
)
def test_uvicorn_serving_the_app_factory_is_refused_too(tmp_path: Path, factory: str, mode: str) -> None:
    """A fork that skips `python -m ...` and runs uvicorn on the factory gets the same check."""
    port = free_port()
    env = clean_environ({"AUTH_MODE": mode, "MCP_PUBLIC_URL": PUBLIC_MCP, "AUTH_ISSUER_URL": PUBLIC_AS})
    args = [PYTHON, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port)]
    process = ServerProcess("uvicorn", args, env, f"http://127.0.0.1:{port}/healthz", tmp_path)
    code, output = process.run_expecting_refusal()
    assert code != 0
    assert "AUTH_USERS: unset, so the built-in development user (demo / demo) can sign in" in output


def test_the_same_public_deployment_starts_once_every_line_is_fixed(tmp_path: Path) -> None:
    """The control: the refusals above are about the defaults, not about public URLs as such."""
    env = {
        "MCP_PUBLIC_URL": PUBLIC_MCP,
        "AUTH_ISSUER_URL": PUBLIC_AS,
        "AUTH_USERS": _users(),
        "INTROSPECTION_CLIENT_SECRET": LONG_SECRET,
        "METRICS_TOKEN": LONG_SECRET,
    }
    deployment = build_deployment("external", "memory", tmp_path, env=env).start()
    try:
        metadata = httpx2.get(
            f"http://127.0.0.1:{deployment.auth_port}/.well-known/oauth-authorization-server", trust_env=False
        )
        assert metadata.json()["issuer"] == PUBLIC_AS
        logs = deployment.logs()
        assert "demo" not in logs
        assert "Development defaults are active" not in logs
    finally:
        deployment.stop()


def test_development_still_runs_on_the_defaults_and_says_so(tmp_path: Path) -> None:
    deployment = build_deployment(
        "internal", "memory", tmp_path, env={"INTROSPECTION_CLIENT_SECRET": DEFAULT_INTROSPECTION_SECRET}
    ).start()
    try:
        logs = deployment.logs()
        assert "sign in as demo / demo" in logs
        assert "Development defaults are active (AUTH_USERS" in logs
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def development_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`make dev-internal` as it is: 127.0.0.1, the demo user."""
    deployment = build_deployment("internal", "memory", Path(tmp_path_factory.mktemp("dev")))
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-For", "203.0.113.7"),  # ngrok, localtunnel, nginx
        ("CF-Connecting-IP", "203.0.113.7"),  # cloudflared
        ("Forwarded", "for=203.0.113.7"),
        ("X-Forwarded-Host", "random-words.trycloudflare.com"),
        ("Via", "1.1 a-proxy"),
    ],
)
def test_a_tunnel_that_rewrites_host_to_loopback_reaches_none_of_the_development_defaults(
    development_server: Deployment, header: str, value: str
) -> None:
    """`ngrok http 3232 --host-header=rewrite`: the Host says 127.0.0.1, so the start-up check and
    the Host guard see development; the header the tunnel adds gives the relay away."""
    base = development_server.base_url
    relayed = {header: value, "Host": f"127.0.0.1:{development_server.mcp_port}"}
    with httpx2.Client(trust_env=False, timeout=10) as http:
        for method, path in (("GET", "/authorize"), ("POST", "/login"), ("POST", "/token"), ("POST", "/mcp")):
            response = http.request(method, base + path, headers=relayed)
            assert response.status_code == 421, (path, response.text)
            assert "development server" in response.json()["error_description"]
        assert http.get(f"{base}/.well-known/oauth-authorization-server").status_code == 200  # from here
    whole_log = "".join(process.log_path.read_text() for process in development_server.processes)
    warnings = [line for line in whole_log.splitlines() if "relayed by a proxy or tunnel" in line]
    assert len(warnings) == 1  # once per process, not once per request


def test_no_authentication_is_not_served_through_a_tunnel_either(tmp_path: Path) -> None:
    deployment = build_deployment("none", "memory", tmp_path).start()
    try:
        response = httpx2.post(
            deployment.mcp_url, json={}, headers={"X-Forwarded-For": "203.0.113.7"}, trust_env=False
        )
        assert response.status_code == 421
        assert "AUTH_MODE" in response.json()["error_description"]
    finally:
        deployment.stop()
