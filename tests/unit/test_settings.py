"""The one settings class: defaults that run, URLs derived in one place, bad values named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_serve_internal_mode_on_loopback_port_3232(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "tests")  # no .env here
    settings = Settings()
    assert settings.auth_mode == "internal"
    assert settings.host == "127.0.0.1"
    assert settings.mcp_resource_url == "http://127.0.0.1:3232/mcp"
    assert settings.issuer == "http://127.0.0.1:3232"


def test_external_mode_defaults_the_issuer_to_the_auth_port() -> None:
    settings = Settings(auth_mode="external", auth_port=3999, _env_file=None)  # type: ignore[call-arg]
    assert settings.issuer == "http://127.0.0.1:3999"
    assert settings.auth_server_base_url == settings.issuer


def test_public_urls_lose_a_trailing_slash_so_the_issuer_is_byte_identical_everywhere() -> None:
    settings = Settings(
        mcp_public_url="https://mcp.example.com/",
        auth_issuer_url="https://auth.example.com/tenant/",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert settings.mcp_resource_url == "https://mcp.example.com/mcp"
    assert settings.issuer == "https://auth.example.com/tenant"


def test_environment_variables_are_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_PORT", "4100")
    monkeypatch.setenv("TOKEN_FORMAT", "jwt")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mcp_port == 4100
    assert settings.token_format == "jwt"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AUTH_MODE", "sometimes", "AUTH_MODE"),
        ("MCP_PORT", "99999", "MCP_PORT"),
        ("MCP_PUBLIC_URL", "ftp://x", "MCP_PUBLIC_URL"),
        ("AUTH_ISSUER_URL", "https://a.example/?q=1", "AUTH_ISSUER_URL"),
        ("TOKEN_FORMAT", "paseto", "TOKEN_FORMAT"),
    ],
)
def test_a_bad_value_stops_start_up_with_a_message_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    assert named in str(failure.value.code)


def test_auth_mode_none_refuses_a_non_loopback_address() -> None:
    with pytest.raises(SettingsError) as failure:
        load_settings(auth_mode="none", host="0.0.0.0", _env_file=None)  # noqa: S104
    assert "AUTH_MODE=none" in str(failure.value.code)


def test_the_server_exits_with_the_message_instead_of_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server"],
        cwd=ROOT,
        env={"MCP_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MCP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_example_lists_every_setting_with_its_default() -> None:
    generated = subprocess.run(
        [sys.executable, "scripts/gen-env-example.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert (ROOT / ".env.example").read_text() == generated, "run: make env-example"


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"| `{name.upper()}` |" not in readme]
    assert not missing, f"README.md configuration table lacks {missing}"


def test_a_bad_pre_registered_client_stops_the_mcp_server_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_server", "--port", "0"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "AUTH_CLIENTS": '[{"client_id": "x", "redirect_uris": ["http://evil.example/cb"]}]',
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AUTH_CLIENTS" in result.stderr
    assert "Traceback" not in result.stderr
