"""The admin CLI's own decisions, without a server: where it calls by default, where it reads the
token, and that it refuses what it cannot do (tests/e2e/test_admin_cli.py runs it for real)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from auth_server.admin import cli
from auth_server.admin.credentials import MIN_TOKEN_LENGTH, AdminCredentials, new_admin_token
from shared.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "url"),
    [
        ({}, "http://127.0.0.1:3232/admin"),
        ({"mcp_port": 8000}, "http://127.0.0.1:8000/admin"),
        ({"auth_mode": "external", "auth_port": 4000}, "http://127.0.0.1:4000/admin"),
        ({"host": "0.0.0.0"}, "http://127.0.0.1:3232/admin"),  # noqa: S104 - a value under test
        ({"host": "::1"}, "http://[::1]:3232/admin"),
        ({"auth_issuer_url": "https://login.example/t1"}, "http://127.0.0.1:3232/t1/admin"),
    ],
)
def test_the_default_url_is_this_hosts_server_as_its_settings_describe_it(
    values: dict[str, object], url: str
) -> None:
    assert cli.default_admin_url(settings(**values)) == url


def test_there_is_no_admin_api_without_an_authorization_server() -> None:
    with pytest.raises(cli.CliError, match="AUTH_MODE=none"):
        cli.default_admin_url(settings(auth_mode="none"))


def test_the_token_comes_from_the_environment_a_file_or_stdin_never_an_argument(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN", " from-the-environment\n")
    assert cli._token(None) == "from-the-environment"
    path = tmp_path / "token"
    path.write_text("from-a-file\nignored second line\n")
    assert cli._token(str(path)) == "from-a-file"
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    assert cli._token("-") == "from-stdin"
    monkeypatch.delenv("ADMIN_TOKEN")
    with pytest.raises(cli.CliError, match="ADMIN_TOKEN"):
        cli._token(None)
    assert not any(a.dest in ("token", "admin_token") for a in cli.parser()._actions)


def test_url_and_token_file_may_come_before_or_after_the_command() -> None:
    before = cli.parser().parse_args(["--url", "http://a/admin", "clients", "show", "x"])
    after = cli.parser().parse_args(["clients", "show", "x", "--url", "http://b/admin", "--token-file", "t"])
    neither = cli.parser().parse_args(["--url", "http://c/admin", "keys", "list"])
    assert (before.url, before.client_id) == ("http://a/admin", "x")
    assert (after.url, after.token_file) == ("http://b/admin", "t")
    assert neither.url == "http://c/admin"


def test_new_token_prints_a_token_only_its_digest_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["new-token"]) == 0
    out = capsys.readouterr().out.split("\n")
    token = out[1].strip()
    digests = out[3].strip().removeprefix("ADMIN_TOKEN_SHA256=")
    assert len(token) >= MIN_TOKEN_LENGTH
    configured = settings(admin_token_sha256=digests)
    assert AdminCredentials.from_settings(configured).verify(token) is not None
    assert AdminCredentials.from_settings(configured).verify(new_admin_token()[0]) is None
