#!/usr/bin/env python3
"""A `$BROWSER` for MCP Inspector's CLI and mcp-remote: logs in and consents, then lands on the
client's callback.

Both open the authorization URL with `xdg-open`, which runs `$BROWSER <url>`. This script plays
the person at the browser: the login driver walks our login and consent pages (user from
E2E_LOGIN_USER / E2E_LOGIN_PASSWORD, default demo/demo) up to the redirect to the client's
callback listener on loopback, and then GETs that URL so the client receives the code. It
appends what it did to E2E_BROWSER_LOG (if set), because xdg-open discards its output.

Run with the project's virtualenv python (the test puts .venv/bin first on PATH).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.login_driver import authorize, follow_to_callback


def main(argv: list[str]) -> int:
    log_path = os.environ.get("E2E_BROWSER_LOG")
    lines: list[str] = []
    try:
        if len(argv) != 2:
            raise SystemExit(f"usage: {argv[0]} URL")
        url = argv[1]
        lines.append(f"open {url}")
        result = authorize(
            url,
            username=os.environ.get("E2E_LOGIN_USER", "demo"),
            password=os.environ.get("E2E_LOGIN_PASSWORD", "demo"),
        )
        lines.append(f"login={result.saw_login} consent={result.saw_consent} -> {result.redirect_url}")
        callback = follow_to_callback(result)
        lines.append(f"callback answered {callback.status_code}")
        return 0 if callback.status_code < 400 else 1
    except BaseException:
        lines.append(traceback.format_exc())
        return 1
    finally:
        if log_path:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
