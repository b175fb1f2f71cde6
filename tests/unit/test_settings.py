"""The one settings class: defaults that run, URLs derived in one place, bad values named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import NoDecode

from shared.settings import Settings, SettingsError, load_settings, unknown_setting_warnings

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


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("ALLOWED_HOSTS", "example.com", "allowed_hosts", ["example.com"]),
        ("ALLOWED_HOSTS", " a.example , b.example ,", "allowed_hosts", ["a.example", "b.example"]),
        ("ALLOWED_ORIGINS", "https://app.example", "allowed_origins", ["https://app.example"]),
        ("NATIVE_REDIRECT_SCHEMES", "cursor", "native_redirect_schemes", ["cursor"]),
        ("NATIVE_REDIRECT_SCHEMES", '["cursor", "vscode"]', "native_redirect_schemes", ["cursor", "vscode"]),
        ("JWT_TOKEN_TYPES", "at+jwt,JWT", "jwt_token_types", ["at+jwt", "JWT"]),
        ("FORWARDED_ALLOW_IPS", "10.0.0.0/8,127.0.0.1", "forwarded_allow_ips", ["10.0.0.0/8", "127.0.0.1"]),
    ],
)
def test_list_settings_take_a_comma_separated_list_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: list[str]
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(_env_file=None), field) == expected


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "AUTH_USERS",
            "alice",
            'AUTH_USERS: expected JSON like {"alice": "<hash from scripts/hash-password.py>"}',
        ),
        ("AUTH_USERS", '["alice"]', "AUTH_USERS: Input should be a valid dictionary (expected JSON like"),
        ("API_KEYS", "{bad", 'API_KEYS: expected JSON like [{"sha256": '),
        ("AUTH_CLIENTS", "my-client", 'AUTH_CLIENTS: expected JSON like [{"client_id": '),
        (
            "ALLOWED_ORIGINS",
            '["unclosed"',
            "ALLOWED_ORIGINS: expected a comma-separated list (a,b) or a JSON list",
        ),
        ("REQUEST_STATE_KEYS", "too-short", "REQUEST_STATE_KEYS: each key must be at least 32 characters"),
    ],
)
def test_a_bad_list_or_json_setting_is_one_line_naming_the_setting_and_the_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None)
    message = str(failure.value.code)
    assert message.splitlines()[0] == "Invalid configuration:"
    assert message.splitlines()[1].strip().startswith(expected), message
    assert len(message.splitlines()) == 2


def test_a_misspelled_setting_in_the_environment_or_dotenv_is_reported(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("AUTH_MOD=external\nMCP_PORT=4000\n")
    warnings = unknown_setting_warnings({"REDIS_URI": "redis://x", "PATH": "/bin", "HOSTNAME": "h"}, env_file)
    assert warnings == [
        f"AUTH_MOD ({env_file}) is not a setting and is ignored; did you mean AUTH_MODE?",
        "REDIS_URI (environment) is not a setting and is ignored; did you mean REDIS_URL?",
    ]


def test_an_unknown_variable_with_a_setting_prefix_is_reported_and_other_tools_variables_are_not() -> None:
    environ = {"REDIS_PASSWORD": "x", "MCP_INSPECTOR_SECRET_STORE": "file", "MCP_BEARER_TOKEN": "t"}
    warnings = unknown_setting_warnings(environ, Path("/nonexistent/.env"))
    assert warnings == [
        "REDIS_PASSWORD (environment) is not a setting and is ignored; see .env.example for every setting"
    ]


def test_the_environment_wins_over_dotenv_which_wins_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("MCP_PORT=4912\nAUTH_PORT=4913\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTH_PORT", "4000")
    settings = load_settings()
    assert (settings.mcp_port, settings.auth_port, settings.host) == (4912, 4000, "127.0.0.1")


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


def test_every_list_setting_is_read_as_text_so_a_plain_value_never_meets_a_json_parser() -> None:
    """A list setting added later without StringList would be back to a 42-line traceback."""
    plain_lists = [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation == list[str] and not any(meta is NoDecode for meta in field.metadata)
    ]
    assert not plain_lists, f"declare these as StringList: {plain_lists}"


def test_accepted_audiences_take_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "external")
    monkeypatch.setenv("ACCEPTED_AUDIENCES", "api://mcp, https://api.example.com")
    assert load_settings(_env_file=None).accepted_audiences == ["api://mcp", "https://api.example.com"]
