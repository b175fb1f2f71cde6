"""Every shell block of the docs marked runnable runs, as written, against real servers.

The marker and the rules are in tests/docs/runnable.py. Each page runs in one bash session against
the deployment a reader of that page has running (`PAGES`), started fresh with the page's own
`dotenv runnable` settings in its `.env`. docs/deployment.md's blocks need TLS, a reverse proxy and
Redis in front of and behind the servers: tests/deployment/test_deployment_guide.py runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs import runnable
from tests.e2e.node_tools import VENV_BIN
from tests.e2e.servers import Deployment, Mode, build_deployment, clean_environ

# The page -> what its reader runs in another terminal. A page with runnable blocks must be here
# or in RUN_ELSEWHERE, so no block is marked runnable without being run.
PAGES: dict[str, Mode] = {
    "README.md": "internal",  # make dev-internal
    "docs/oauth.md": "internal",  # make dev-internal
    "docs/auth-modes.md": "internal",  # make dev-internal
    "docs/agent-identity.md": "internal",  # make dev-internal, with the page's settings
}
RUN_ELSEWHERE = {"docs/deployment.md": "tests/deployment/test_deployment_guide.py"}  # page -> its test


def start_for(page: str, workdir: Path) -> Deployment:
    deployment = build_deployment(PAGES[page], "memory", workdir / "servers")
    (deployment.workdir / ".env").parent.mkdir(parents=True, exist_ok=True)
    (deployment.workdir / ".env").write_text(runnable.settings_text(page, development_urls(deployment)))
    return deployment.start()


def development_urls(deployment: Deployment) -> dict[str, str]:
    """What the page says (the development servers' URLs) -> where this deployment serves."""
    urls = {runnable.DEV_MCP_URL: deployment.base_url}
    if deployment.mode == "external":
        urls[runnable.DEV_AUTH_URL] = deployment.issuer
    return urls


def session_env(workdir: Path) -> dict[str, str]:
    env = clean_environ({"HOME": str(workdir)})
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"  # python3 with nothing but the stdlib is enough
    return env


def test_every_page_with_runnable_blocks_is_run_by_a_test() -> None:
    pages = runnable.documents_with_runnable_blocks()
    assert "docs/oauth.md" in pages, "the marker parser finds nothing: it is broken"
    unclaimed = [page for page in pages if page not in PAGES and page not in RUN_ELSEWHERE]
    assert not unclaimed, f"runnable blocks nobody runs: add {unclaimed} to PAGES or RUN_ELSEWHERE"
    for page in pages:  # every block's marker is well-formed (language, attributes)
        runnable.runnable_blocks(page)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_runnable_blocks_of_the_page_run_as_written(page: str, tmp_path: Path) -> None:
    assert runnable.runnable_blocks(page), f"{page} has no runnable block left: drop it from PAGES"
    deployment = start_for(page, tmp_path)
    try:
        reader = runnable.scratch_folder(tmp_path / "reader")
        done = runnable.run_session(page, development_urls(deployment), reader, session_env(tmp_path))
    finally:
        deployment.stop()
    output = done.stdout
    assert done.returncode == 0, (
        f"{runnable.failed_block(output)} failed (exit {done.returncode}):\n{output[-6000:]}\n"
        + deployment.logs()
    )
