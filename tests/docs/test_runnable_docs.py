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
from tests.fixtures.launch import free_port

# The page -> what its reader runs in another terminal. A page with runnable blocks must be here
# or in RUN_ELSEWHERE, so no block is marked runnable without being run.
PAGES: dict[str, Mode] = {
    "README.md": "internal",  # make dev-internal
    "docs/oauth.md": "internal",  # make dev-internal
    "docs/auth-modes.md": "internal",  # make dev-internal
    "docs/agent-identity.md": "internal",  # make dev-internal, with the page's settings
}
RUN_ELSEWHERE = {"docs/deployment.md": "tests/deployment/test_deployment_guide.py"}  # page -> its test


def start_for(page: str, workdir: Path) -> tuple[Deployment, dict[str, str]]:
    """The page's deployment, started with the page's settings, and the URL replacements that
    turn what the page says into where this test serves (the same for its settings and blocks)."""
    deployment = build_deployment(PAGES[page], "memory", workdir / "servers")
    urls = development_urls(deployment)
    (deployment.workdir / ".env").parent.mkdir(parents=True, exist_ok=True)
    (deployment.workdir / ".env").write_text(runnable.settings_text(page, urls))
    return deployment.start(), urls


def development_urls(deployment: Deployment) -> dict[str, str]:
    """What the page says (the development servers' URLs, a provider it plays) -> this test's."""
    urls = {
        runnable.DEV_MCP_URL: deployment.base_url,
        runnable.DEV_IDP_URL: f"http://127.0.0.1:{free_port()}",
    }
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
    deployment, urls = start_for(page, tmp_path)
    try:
        reader = runnable.scratch_folder(tmp_path / "reader")
        done = runnable.run_session(page, urls, reader, session_env(tmp_path))
    finally:
        deployment.stop()
    output = done.stdout
    assert done.returncode == 0, (
        f"{runnable.failed_block(output)} failed (exit {done.returncode}):\n{output[-6000:]}\n"
        + deployment.logs()
    )
