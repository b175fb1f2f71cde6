"""The first thing a user sees (issue 15 items 1-4 and 6, issue 12 item 8), with the real processes.

- `.env` means what it says for every entry point, `make dev-*` included: the environment, then
  `.env`, then the defaults.
- stdio is clean: a client launching the server (directly, or through `make dev-stdio` on a fresh
  clone) reads JSON-RPC and nothing else on standard output.
- Bad settings stop start-up with one readable line; misspelled ones are warned about.
- Refusals name the setting that decides them: a foreign Host's 421 (ALLOWED_HOSTS), an
  `invalid_target` at a standalone auth server (MCP_PUBLIC_URL), an issuer the provider does not
  publish (AUTH_SERVER_URL, and /readyz says the server cannot use its provider).
- Each server's banner: the URL to paste, the mode, the issuer, the store, the demo login.

The Makefile runs from a copy in a temporary folder (it reads `.env` from its own folder, and this
checkout's must stay untouched), with `.venv/bin/python` a two-line script: `-m pip` prints what
pip prints on a fresh clone (the real pip would reinstall this checkout's venv under the running
suite), anything else runs this interpreter.
"""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.servers import (
    PYTHON,
    REPO_ROOT,
    Deployment,
    ServerProcess,
    build_deployment,
    clean_environ,
    free_port,
)

PRETEND_PIP = "Collecting mcp>=2.3.0 (what pip prints on a fresh clone)"
READ_TIMEOUT = 20.0


def _log_lines(text: str) -> list[str]:
    """The messages of JSON log lines (the processes log JSON: their stderr is not a terminal)."""
    messages = []
    for line in text.splitlines():
        try:
            messages.append(str(json.loads(line)["message"]))
        except (ValueError, KeyError, TypeError):
            messages.append(line)
    return messages


def _python_server(module: str, env: dict[str, str], port: int, cwd: Path) -> ServerProcess:
    return ServerProcess(module, [PYTHON, "-m", module], env, f"http://127.0.0.1:{port}/healthz", cwd)


# --- the Makefile, from a copy -----------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder with this repo's Makefile and a `.venv/bin/python` (see the module docstring)."""
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "scripts/dev-external.sh"):
        shutil.copy(REPO_ROOT / name, root / name)
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "{PRETEND_PIP}"; exit 0; fi\n'
        f'exec {PYTHON} "$@"\n'
    )
    python.chmod(0o755)
    return root


def _installed(checkout: Path) -> None:
    (checkout / ".venv" / ".installed-stamp").touch()


def _make_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = clean_environ(extra or {})
    for inherited in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # when the suite itself runs under make
        env.pop(inherited, None)
    return env


def _make_server(checkout: Path, target: str, port: int, env: dict[str, str] | None = None) -> ServerProcess:
    return ServerProcess(
        f"make-{target}",
        ["make", target],
        _make_env(env),
        f"http://127.0.0.1:{port}/healthz",
        checkout,
        process_group=True,
    )


def test_make_dev_internal_uses_the_port_dotenv_names(checkout: Path) -> None:
    _installed(checkout)
    port = free_port()
    (checkout / ".env").write_text(f"MCP_PORT={port}\nRATE_LIMIT_PER_MINUTE=1000\n")
    server = _make_server(checkout, "dev-internal", port)
    server.start()
    try:
        assert httpx2.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200
        assert f"Connect your MCP client to http://127.0.0.1:{port}/mcp" in server.log_tail()
    finally:
        server.stop()


def test_the_environment_wins_over_dotenv_under_make_too(checkout: Path) -> None:
    _installed(checkout)
    from_dotenv, from_environment = free_port(), free_port()
    (checkout / ".env").write_text(f"MCP_PORT={from_dotenv}\n")
    server = _make_server(checkout, "dev-internal", from_environment, {"MCP_PORT": str(from_environment)})
    server.start()
    server.stop()


def test_python_m_reads_the_same_dotenv_for_both_servers(tmp_path: Path) -> None:
    mcp_port, auth_port = free_port(), free_port()
    (tmp_path / ".env").write_text(f"AUTH_MODE=external\nMCP_PORT={mcp_port}\nAUTH_PORT={auth_port}\n")
    env = clean_environ({})
    auth = ServerProcess(
        "auth", [PYTHON, "-m", "auth_server"], env, f"http://127.0.0.1:{auth_port}/healthz", tmp_path
    )
    mcp = ServerProcess(
        "mcp", [PYTHON, "-m", "mcp_server"], env, f"http://127.0.0.1:{mcp_port}/healthz", tmp_path
    )
    auth.start()
    try:
        mcp.start()
        mcp.stop()
        # The standalone AS derived the MCP resource from the same MCP_PORT, and says so.
        assert f"issues tokens for the MCP server at http://127.0.0.1:{mcp_port}/mcp" in auth.log_tail()
    finally:
        auth.stop()


# --- stdio ---------------------------------------------------------------------------------------


class StdioClient:
    """A client that launches the server and speaks newline-delimited JSON-RPC on its pipes, as
    Claude Desktop does; every line the server writes to stdout is kept, raw, for inspection."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                args, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        self.raw_lines: list[bytes] = []
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            line = self._lines.get(timeout=READ_TIMEOUT)
            assert line is not None, f"stdout closed; stderr:\n{self.stderr_path.read_text()}"
            message = json.loads(line)
            if message.get("id") == request_id:
                return dict(message)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        while self._lines.get(timeout=READ_TIMEOUT) is not None:
            pass


@pytest.fixture
def stdio_clients() -> Iterator[list[StdioClient]]:
    clients: list[StdioClient] = []
    yield clients
    for client in clients:
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait(timeout=5)


def _converse(client: StdioClient) -> None:
    """initialize, initialized, tools/list, a tool call: what every desktop client does first."""
    init = client.request(
        1,
        "initialize",
        {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "desktop", "version": "1"},
        },
    )
    assert init["result"]["serverInfo"]["name"]
    client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    tools = client.request(2, "tools/list", {})
    assert "whoami" in {tool["name"] for tool in tools["result"]["tools"]}
    called = client.request(3, "tools/call", {"name": "whoami", "arguments": {}})
    assert called["result"]["isError"] is False
    client.close()
    assert client.raw_lines, "no output at all"
    for raw in client.raw_lines:
        message = json.loads(raw)  # any line that is not JSON fails here, as it fails a client
        assert message["jsonrpc"] == "2.0", raw


def test_a_desktop_client_launching_python_reads_only_json_rpc_on_stdout(
    tmp_path: Path, stdio_clients: list[StdioClient]
) -> None:
    # What docs/connecting-clients.md tells a desktop client to launch; a misspelled setting and
    # DEBUG logs make sure warnings and logs have something to write (all of it to stderr).
    env = clean_environ({"AUTH_MODE": "none", "LOG_LEVEL": "DEBUG", "REDIS_URI": "redis://nowhere"})
    client = StdioClient(
        [PYTHON, "-m", "mcp_server", "--transport", "stdio"], env, tmp_path, tmp_path / "err"
    )
    stdio_clients.append(client)
    _converse(client)
    stderr = _log_lines(client.stderr_path.read_text())
    assert "MCP server on stdio: the client that launched this process talks to it" in stderr
    assert any(line.startswith("REDIS_URI (environment) is not a setting") for line in stderr)


def test_make_dev_stdio_on_a_fresh_clone_writes_only_json_rpc_on_stdout(
    checkout: Path, stdio_clients: list[StdioClient]
) -> None:
    client = StdioClient(["make", "dev-stdio"], _make_env(), checkout, checkout / "err")
    stdio_clients.append(client)
    _converse(client)
    stderr = client.stderr_path.read_text()
    assert PRETEND_PIP in stderr  # the install step ran, and wrote where the protocol is not
    assert (checkout / ".venv" / ".installed-stamp").exists()


# --- bad and misspelled settings -----------------------------------------------------------------


def _exit_output(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("AUTH_USERS", "alice", "  AUTH_USERS: expected JSON like"),
        ("API_KEYS", "{bad", "  API_KEYS: expected JSON like"),
        (
            "JWT_SIGNING_KEYS",
            "/nonexistent/keys.json",
            "  JWT_SIGNING_KEYS /nonexistent/keys.json: [Errno 2]",
        ),
    ],
)
def test_a_bad_setting_stops_each_server_with_one_line_and_no_traceback(
    tmp_path: Path, variable: str, value: str, line: str
) -> None:
    for module, mode in (("mcp_server", "internal"), ("auth_server", "external")):
        env = clean_environ({"AUTH_MODE": mode, variable: value, "MCP_PORT": "0", "AUTH_PORT": "0"})
        code, output = _exit_output([PYTHON, "-m", module], env, tmp_path)
        assert code != 0
        assert "Traceback" not in output, output
        assert output.splitlines() == ["Invalid configuration:", output.splitlines()[1]]
        assert output.splitlines()[1].startswith(line), output


def test_a_signing_key_file_that_is_not_a_jwks_stops_start_up(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    env = clean_environ({"JWT_SIGNING_KEYS": str(keys), "TOKEN_FORMAT": "jwt", "MCP_PORT": "0"})
    code, output = _exit_output([PYTHON, "-m", "mcp_server"], env, tmp_path)
    assert code != 0
    assert f"JWT_SIGNING_KEYS {keys}:" in output
    assert "Traceback" not in output


def test_a_signing_key_file_that_is_not_json_says_what_it_should_hold(tmp_path: Path) -> None:
    keys = tmp_path / "keys.pem"
    keys.write_text("-----BEGIN PRIVATE KEY-----\n")
    env = clean_environ({"JWT_SIGNING_KEYS": str(keys), "TOKEN_FORMAT": "jwt", "MCP_PORT": "0"})
    code, output = _exit_output([PYTHON, "-m", "mcp_server"], env, tmp_path)
    assert code != 0
    assert output.splitlines()[0] == "Invalid configuration:", output
    assert f"JWT_SIGNING_KEYS {keys}: not JSON" in output
    assert 'expected a JSON Web Key Set, {"keys": [...]}' in output
    assert "Traceback" not in output


def test_a_port_another_process_holds_stops_each_server_with_one_line_naming_its_setting(
    tmp_path: Path,
) -> None:
    with socket.socket() as holder:  # what a server already running looks like to the next one
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        for module, mode, setting in (
            ("mcp_server", "internal", "MCP_PORT"),
            ("auth_server", "external", "AUTH_PORT"),
        ):
            env = clean_environ({"AUTH_MODE": mode, setting: port, "HOST": "127.0.0.1"})
            code, output = _exit_output([PYTHON, "-m", module], env, tmp_path)
            assert code == 1, output
            # One line, before any banner: nothing says "ready" for a server that cannot listen.
            assert output.splitlines() == [
                f"Cannot listen on 127.0.0.1:{port} (Address already in use): another process holds "
                f"that port (a server already running?); stop it, or set {setting} (or --port) to a free port"
            ], output


def test_plain_list_spellings_start_the_server(start_deployment: Any) -> None:
    deployment = start_deployment(
        "internal", env={"ALLOWED_ORIGINS": "http://localhost:5173", "NATIVE_REDIRECT_SCHEMES": "cursor"}
    )
    response = httpx2.options(
        deployment.mcp_url,
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
        trust_env=False,
    )
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_misspelled_settings_are_warned_about_at_start(tmp_path: Path) -> None:
    deployment = build_deployment("internal", "memory", tmp_path, env={"REDIS_URI": "redis://127.0.0.1:1"})
    (tmp_path / ".env").write_text("AUTH_MOD=external\n")
    deployment.start()
    try:
        logs = _log_lines(deployment.logs())
        assert "REDIS_URI (environment) is not a setting and is ignored; did you mean REDIS_URL?" in logs
        assert "AUTH_MOD (.env) is not a setting and is ignored; did you mean AUTH_MODE?" in logs
        assert any("store: memory" in line for line in logs)  # what the typo silently meant
    finally:
        deployment.stop()


# --- refusals that name the setting ------------------------------------------------------------


@pytest.fixture(scope="module")
def internal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = build_deployment("internal", "memory", Path(tmp_path_factory.mktemp("internal"))).start()
    try:
        yield deployment
    finally:
        deployment.stop()


def test_a_foreign_host_is_told_which_setting_lists_the_accepted_names(internal: Deployment) -> None:
    response = httpx2.post(internal.mcp_url, headers={"Host": "tunnel.example.net"}, json={}, trust_env=False)
    assert response.status_code == 421
    assert "ALLOWED_HOSTS" in response.json()["error"]["message"]
    warnings = [line for line in _log_lines(internal.logs()) if "tunnel.example.net" in line]
    assert warnings
    assert "add it to ALLOWED_HOSTS" in warnings[0]


def test_the_development_banner_gives_the_url_mode_issuer_store_and_demo_login(internal: Deployment) -> None:
    logs = _log_lines(internal.logs())
    assert f"MCP server ready. Connect your MCP client to {internal.mcp_url}" in logs
    assert f"  auth: internal (authorization server in this process, issuer {internal.issuer})" in logs
    assert "  store: memory (everything is lost at restart; REDIS_URL keeps it)" in logs
    assert "  sign in as demo / demo (the development user)" in logs
    assert any(line.startswith("Development defaults are active (AUTH_USERS") for line in logs)


def test_a_standalone_auth_server_serving_another_mcp_url_says_so_at_start_and_on_invalid_target(
    tmp_path: Path,
) -> None:
    # The auth server runs apart and was not told the MCP server's port: it derives 3232.
    auth_port, mcp_port = free_port(), free_port()
    env = clean_environ({"AUTH_MODE": "external", "AUTH_PORT": str(auth_port)})
    auth = ServerProcess(
        "auth", [PYTHON, "-m", "auth_server"], env, f"http://127.0.0.1:{auth_port}/healthz", tmp_path
    )
    auth.start()
    try:
        assert "(MCP_PUBLIC_URL unset: HOST and MCP_PORT)" in auth.log_tail()
        base = f"http://127.0.0.1:{auth_port}"
        redirect = "http://127.0.0.1:53124/callback"
        registered = httpx2.post(f"{base}/register", json={"redirect_uris": [redirect]}, trust_env=False)
        asked = f"http://127.0.0.1:{mcp_port}/mcp"
        answer = httpx2.get(
            f"{base}/authorize",
            params={
                "response_type": "code",
                "client_id": registered.json()["client_id"],
                "redirect_uri": redirect,
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
                "state": "s",
                "resource": asked,
            },
            trust_env=False,
        )
        assert "invalid_target" in answer.headers.get("location", answer.text)
        lines = [line for line in _log_lines(auth.log_tail()) if line.startswith("invalid_target")]
        assert lines, auth.log_tail()
        assert repr(asked) in lines[0]
        assert "http://127.0.0.1:3232/mcp" in lines[0]
        assert "MCP_PUBLIC_URL" in lines[0]
    finally:
        auth.stop()


def test_an_issuer_the_provider_does_not_publish_makes_readyz_fail_and_the_log_name_the_setting(
    tmp_path: Path,
) -> None:
    authority = build_deployment("external", "memory", tmp_path / "as")
    (as_process,) = [p for p in authority.processes if p.name == "auth_server"]
    as_process.start()
    try:
        # The same server spelled with a trailing slash (as Auth0 spells its issuers): its metadata
        # names the issuer without one, so byte for byte it is another issuer, and refused.
        mcp_port = free_port()
        spelled = f"http://127.0.0.1:{authority.auth_port}/"
        env = {**as_process.env, "AUTH_SERVER_URL": spelled, "MCP_PORT": str(mcp_port)}
        mcp = _python_server("mcp_server", env, mcp_port, tmp_path / "mcp")
        mcp.start()
        try:
            ready = httpx2.get(f"http://127.0.0.1:{mcp_port}/readyz", trust_env=False)
            assert ready.status_code == 503
            assert "AUTH_SERVER_URL" in ready.json()["reason"]
            errors = [line for line in _log_lines(mcp.log_tail()) if "names issuer" in line]
            assert errors
            assert "set AUTH_SERVER_URL to exactly the issuer" in errors[0]
        finally:
            mcp.stop()
    finally:
        as_process.stop()
