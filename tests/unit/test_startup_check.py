"""shared/startup.py: what counts as development, what is refused outside it, what the banner says.

The attacks themselves (real processes refusing to start) are in
tests/security/test_development_defaults.py; here every rule is checked directly, quickly.
"""

from __future__ import annotations

from typing import Any

import pytest

from auth_server.app import create_auth_app
from mcp_server.app import create_app
from shared import startup
from shared.settings import Settings
from shared.startup import AuthorizationServerFacts, Role, UnsafeOutsideDevelopment

DEMO = AuthorizationServerFacts(introspection_client=False, demo_login=("demo", "demo"))
NO_DEMO = AuthorizationServerFacts(introspection_client=False, demo_login=None)
MCP_INTERNAL = Role("MCP server", serves_mcp=True, authorization_server=DEMO)
MCP_ONLY = Role("MCP server", serves_mcp=True)
STANDALONE_AS = Role("authorization server", serves_mcp=False, authorization_server=NO_DEMO)
LONG = "x" * 32


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"host": "0.0.0.0"}, "HOST=0.0.0.0"),  # noqa: S104
        ({"allowed_hosts": ["mcp.example.com"]}, "ALLOWED_HOSTS=mcp.example.com"),
        ({"mcp_public_url": "https://mcp.example.com"}, "MCP_PUBLIC_URL=https://mcp.example.com"),
        ({"auth_issuer_url": "https://as.example.com"}, "AUTH_ISSUER_URL=https://as.example.com"),
        ({"mcp_public_url": "https://localhost:8443"}, "MCP_PUBLIC_URL=https://localhost:8443"),
    ],
)
def test_anything_but_loopback_http_everywhere_is_not_development(
    values: dict[str, Any], reason: str
) -> None:
    reasons = startup.not_development_because(_settings(**values), MCP_INTERNAL)
    assert any(reason in line for line in reasons)


def test_loopback_http_urls_on_a_loopback_host_are_development() -> None:
    settings = _settings(
        mcp_public_url="http://localhost:3232",
        auth_issuer_url="http://127.0.0.1:3232",
        allowed_hosts=["localhost:3232", "[::1]"],
    )
    assert startup.not_development_because(settings, MCP_INTERNAL) == []


def test_a_standalone_authorization_servers_issuer_from_auth_server_url_counts_as_public() -> None:
    settings = _settings(auth_mode="external", auth_server_url="https://auth.example.com")
    assert startup.not_development_because(settings, STANDALONE_AS)
    # The MCP server merely trusting a remote issuer stays a local development server.
    assert startup.not_development_because(settings, MCP_ONLY) == []


def test_in_development_the_defaults_in_effect_are_returned_for_the_banner() -> None:
    defaults = startup.check_deployment(_settings(), MCP_INTERNAL)
    assert [problem.setting for problem in defaults] == ["AUTH_USERS"]


def _refusal(settings: Settings, role: Role) -> str:
    with pytest.raises(UnsafeOutsideDevelopment) as refused:
        startup.check_deployment(settings, role)
    return str(refused.value.code)


def test_the_refusal_has_one_line_per_problem_each_naming_its_setting() -> None:
    message = _refusal(_settings(host="0.0.0.0", metrics_token="short"), MCP_INTERNAL)  # noqa: S104
    first, *lines = message.splitlines()
    assert first.startswith("Refusing to start the MCP server: this is not development (HOST=0.0.0.0")
    assert [line.split(":")[0].strip() for line in lines] == ["AUTH_USERS", "METRICS_TOKEN", "MCP_PUBLIC_URL"]


def test_the_introspection_secret_counts_where_the_client_exists_or_is_used() -> None:
    public = {"mcp_public_url": "https://mcp.example.com", "auth_issuer_url": "https://as.example.com"}
    external = _settings(auth_mode="external", **public)
    assert "INTROSPECTION_CLIENT_SECRET" in _refusal(external, MCP_ONLY)  # the MCP server sends it
    with_client = Role("authorization server", False, AuthorizationServerFacts(True, None))
    assert "INTROSPECTION_CLIENT_SECRET" in _refusal(external, with_client)  # the AS accepts it
    internal_without_client = _settings(auth_users={"a": "h"}, **public)
    assert startup.check_deployment(internal_without_client, Role("MCP server", True, NO_DEMO)) == []


def test_signing_in_at_an_upstream_provider_is_not_the_demo_user() -> None:
    settings = _settings(upstream_oidc_issuer="https://idp.example.com", upstream_oidc_client_id="mcp")
    assert not settings.uses_demo_user
    assert _settings().uses_demo_user
    assert not _settings(auth_users={"alice": "h"}).uses_demo_user


def test_a_metrics_token_only_counts_when_metrics_are_served() -> None:
    settings = _settings(host="0.0.0.0", mcp_public_url="https://m.example", metrics_token="short")  # noqa: S104
    assert "METRICS_TOKEN" in _refusal(settings, Role("MCP server", True, NO_DEMO))
    off = _settings(
        host="0.0.0.0",  # noqa: S104
        mcp_public_url="https://m.example",
        metrics_token="short",
        metrics_enabled=False,
    )
    assert startup.check_deployment(off, Role("MCP server", True, NO_DEMO)) == []


def test_an_http_issuer_clients_are_sent_to_is_refused_but_a_back_channel_address_is_not() -> None:
    public = {"mcp_public_url": "https://mcp.example.com", "introspection_client_secret": LONG}
    http_issuer = _settings(auth_mode="external", auth_server_url="http://as.internal:3001", **public)
    assert "AUTH_SERVER_URL: http://as.internal:3001 is plain http" in _refusal(http_issuer, MCP_ONLY)
    back_channel = _settings(
        auth_mode="external",
        auth_server_url="http://as.internal:3001",
        auth_issuer_url="https://as.example.com",
        **public,
    )
    assert startup.check_deployment(back_channel, MCP_ONLY) == []


def test_the_app_factories_refuse_when_embedded_too() -> None:
    """A fork calling the factories itself (its own server, its own tests) gets the same check."""
    settings = _settings(mcp_public_url="https://mcp.example.com")
    with pytest.raises(UnsafeOutsideDevelopment):
        create_app(settings)
    with pytest.raises(UnsafeOutsideDevelopment):
        create_auth_app(_settings(auth_mode="external", auth_issuer_url="https://as.example.com"))


def test_the_banner_gives_the_url_to_paste_the_mode_the_issuer_and_the_store() -> None:
    settings = _settings(redis_url="redis://:hunter2@cache.internal:6380/2", redis_key_prefix="mcp:")
    lines = startup.banner(settings, MCP_INTERNAL)
    text = "\n".join(lines)
    assert lines[0] == "MCP server ready. Connect your MCP client to http://127.0.0.1:3232/mcp"
    assert "auth: internal (authorization server in this process, issuer http://127.0.0.1:3232)" in text
    assert "store: Redis at redis://cache.internal:6380/2, key prefix 'mcp:'" in text
    assert "hunter2" not in text
    assert "sign in as demo / demo" in text


def test_the_standalone_banner_names_the_resource_and_the_setting_that_decides_it() -> None:
    text = "\n".join(startup.banner(_settings(auth_mode="external", mcp_port=4000), STANDALONE_AS))
    assert "Issuer: http://127.0.0.1:3001" in text
    assert "issues tokens for the MCP server at http://127.0.0.1:4000/mcp (MCP_PUBLIC_URL unset" in text


def test_the_stdio_banner_has_no_url_to_paste() -> None:
    lines = startup.banner(_settings(auth_mode="none"), MCP_ONLY, transport="stdio")
    assert lines[0].startswith("MCP server on stdio")
    assert not any("http" in line for line in lines)


def test_one_worker_needs_nothing_and_several_need_shared_state() -> None:
    assert startup.worker_problems(_settings(), MCP_INTERNAL) == []
    shared = {"redis_url": "redis://127.0.0.1:6379/0"}
    ready = _settings(web_concurrency=4, mcp_session_mode="stateless", legacy_sse=False, **shared)
    assert startup.worker_problems(ready, MCP_INTERNAL) == []
    assert startup.worker_problems(_settings(web_concurrency=4, **shared), STANDALONE_AS) == []

    on_memory = startup.worker_problems(_settings(web_concurrency=2), STANDALONE_AS)
    assert [problem.setting for problem in on_memory] == ["REDIS_URL"]
    everything = startup.worker_problems(_settings(web_concurrency=2), MCP_ONLY)
    assert [problem.setting for problem in everything] == ["REDIS_URL", "MCP_SESSION_MODE", "LEGACY_SSE"]
    with pytest.raises(startup.WorkersRefused, match="WEB_CONCURRENCY=2 workers") as refused:
        startup.check_workers(_settings(web_concurrency=2), MCP_ONLY)
    assert len(str(refused.value).splitlines()) == 4  # the headline, then one line per setting


def test_both_app_factories_refuse_workers_on_the_memory_store() -> None:
    with pytest.raises(startup.WorkersRefused, match="REDIS_URL"):
        create_app(_settings(web_concurrency=2, mcp_session_mode="stateless", legacy_sse=False))
    with pytest.raises(startup.WorkersRefused, match="REDIS_URL"):
        create_auth_app(_settings(auth_mode="external", web_concurrency=2))


def test_the_banner_counts_the_workers_only_when_there_are_several() -> None:
    shared = {"redis_url": "redis://127.0.0.1:6379/0", "mcp_session_mode": "stateless", "legacy_sse": False}
    lines = startup.banner(_settings(web_concurrency=3, **shared), MCP_INTERNAL)
    assert "  workers: 3 processes on this port (WEB_CONCURRENCY)" in lines
    assert not any("workers:" in line for line in startup.banner(_settings(), MCP_INTERNAL))


def test_the_published_secret_with_something_added_is_refused_too() -> None:
    settings = _settings(
        auth_mode="external",
        mcp_public_url="https://mcp.example.com",
        auth_issuer_url="https://as.example.com",
        introspection_client_secret=startup.DEFAULT_INTROSPECTION_SECRET + "-please-2026",
    )
    assert "with something added" in _refusal(settings, MCP_ONLY)


@pytest.mark.parametrize(
    ("entries", "everyone"), [(["*"], True), (["0.0.0.0/0"], True), (["::/0"], True), (["10.0.0.0/8"], False)]
)
def test_trusting_every_address_for_forwarded_headers_is_named_at_start(
    entries: list[str], everyone: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(forwarded_allow_ips=entries)
    assert startup.trusts_every_address(settings) is everyone
    with caplog.at_level("WARNING", logger="startup"):
        startup.log_banner(settings, MCP_ONLY, defaults=[])
    assert any("trusts every address" in r.getMessage() for r in caplog.records) is everyone
