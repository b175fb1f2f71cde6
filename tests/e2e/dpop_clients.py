"""Runs tests/e2e/dpop_client.mjs (openid-client, dpop and the MCP TypeScript SDK on Node 22)
against a running MCP server, signing in on its behalf: the DPoP client of tests/e2e and tests/idp.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.login_driver import DEMO_USER, authorize
from tests.e2e.node_tools import NODE_BIN, node_env
from tests.e2e.servers import REPO_ROOT

CLIENT_SCRIPT = Path(__file__).with_name("dpop_client.mjs")
CLIENT_MODULES = REPO_ROOT / ".cache" / "dpop-clients" / "node_modules"
SDK_CLIENT = REPO_ROOT / ".cache" / "mcp-tools" / "node_modules" / "@modelcontextprotocol" / "sdk"
RUN_TIMEOUT = 90.0  # the client stops itself after 60 s; this only bounds a wedged pipe


def require_clients() -> None:
    for path in (NODE_BIN / "node", CLIENT_MODULES / "openid-client", CLIENT_MODULES / "dpop", SDK_CLIENT):
        if not path.exists():
            pytest.fail(
                f"{path} is missing: run `make node-tools` (scripts/ensure-node-tools.sh) first. "
                "These tests fail rather than skip.",
                pytrace=False,
            )


def run_client(mcp_url: str, tmp_path: Path, user: tuple[str, str] = DEMO_USER, **env: str) -> dict[str, Any]:
    """Run dpop_client.mjs to its end: it prints the authorization URL, we sign in on its behalf
    and hand it the URL the browser would have been sent back to; it prints what it got."""
    require_clients()
    stderr_path = tmp_path / "dpop-client.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [str(NODE_BIN / "node"), str(CLIENT_SCRIPT), mcp_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=node_env(tmp_path, **env),
        )
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first, f"the client printed nothing: {stderr_path.read_text()[-3000:]}"
            url = json.loads(first)["authorize"]
            signed_in = authorize(url, username=user[0], password=user[1])
            assert signed_in.code, signed_in.redirect_url
            out, _ = process.communicate(signed_in.redirect_url + "\n", timeout=RUN_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, f"client failed ({process.returncode}): {stderr_path.read_text()[-3000:]}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])["result"]
    return result


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims
