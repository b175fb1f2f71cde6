"""`conformance authorization` (0.2.0-alpha.12) against our authorization server, in both modes.

The suite checks the RFC 8414 metadata and one authorization-code + PKCE run with a
pre-registered client: it prints the authorization URL and waits for
`http://127.0.0.1:PORT/callback`. The test plays the person at the browser: the login driver
walks our login and consent pages and the final redirect is delivered to the suite's callback
server. The client is a public one pre-registered through AUTH_CLIENTS.

Why not a confidential client as well: the suite (0.2.0-alpha.12, `selectTokenAuthMethod`) picks
token_endpoint_auth_method `none` whenever the metadata lists it, even when given
`--client-secret`, so it would present a confidential client without its secret and our AS
rightly answers 401 invalid_client. Confidential clients are covered by the AS's own tests.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from tests.e2e.login_driver import authorize, follow_to_callback
from tests.e2e.node_tools import node_env, tool
from tests.e2e.servers import Deployment, Mode, free_port

SUITE_TIMEOUT = 60.0


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


@pytest.mark.parametrize("mode", ["internal", "external"])
def test_conformance_authorization_suite_passes_with_a_real_login(
    start_deployment: Callable[..., Deployment], mode: Mode, tmp_path: Path
) -> None:
    port = free_port()
    client = {
        "client_id": "conformance-suite",
        "client_name": "MCP conformance suite",
        "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
    }
    deployment: Deployment = start_deployment(mode, "memory", {"AUTH_CLIENTS": json.dumps([client])})

    output_dir = tmp_path / "results"
    command = [str(tool("conformance")), "authorization", "--url", deployment.issuer]
    command += ["--client-id", str(client["client_id"]), "--resource", deployment.mcp_url]
    command += ["-p", str(port), "-o", str(output_dir)]

    process = subprocess.Popen(
        command,
        env=node_env(tmp_path),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    transcript: list[str] = []
    try:
        authorization_url = None
        while authorization_url is None:
            line = lines.get(timeout=SUITE_TIMEOUT)
            if line is None:
                break
            transcript.append(line)
            if line.startswith("http") and "response_type=code" in line:
                authorization_url = line.strip()
        assert authorization_url, "the suite never printed an authorization URL:\n" + "".join(transcript)
        assert authorization_url.startswith(f"{deployment.issuer}/")

        response = authorize(authorization_url)
        assert response.saw_login, response.visited
        delivered = follow_to_callback(response)
        assert delivered.status_code == 200, delivered.text

        process.wait(timeout=SUITE_TIMEOUT)
        while (line := lines.get(timeout=5)) is not None:
            transcript.append(line)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    output = "".join(transcript)
    assert process.returncode == 0, output
    checks = [json.loads(p.read_text()) for p in output_dir.rglob("checks.json")]
    flat = [check for group in checks for check in group]
    names = {check.get("id") or check.get("name") for check in flat}
    assert flat, f"no checks.json written in {output_dir}:\n{output}"
    bad = [c for c in flat if c.get("status") not in ("SUCCESS", "INFO")]
    assert not bad, json.dumps(bad, indent=2)
    assert any("authorization-code" in str(n) for n in names), names
    assert any("metadata" in str(n) for n in names), names
