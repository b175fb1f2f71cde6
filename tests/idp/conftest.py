"""tests/idp: our servers against a certified third-party OpenID provider (oidc-provider, Node 22).

One session-wide `world`: the provider on 127.0.0.1 and three real server processes, each
configured only through settings, as a user would:

* `jwt`: the MCP server alone (AUTH_MODE=external), trusting the provider by AUTH_SERVER_URL,
  TOKEN_FORMAT=jwt: the provider issues RFC 9068 JWTs for this resource; the server checks them
  against the provider's JWKS. The provider is set to serve OpenID discovery only (as Google,
  Entra ID, Auth0 and Cognito do), so the fallback from RFC 8414 to OpenID discovery is what
  finds its keys and endpoints (the SDK client's and ours).
* `introspection`: the same, but the provider issues opaque tokens for this resource and the
  server introspects them (client_secret_post, with a client registered at the provider).
* `federated`: our own authorization server (AUTH_MODE=internal) whose login step signs users in
  at the provider (UPSTREAM_OIDC_*); MCP clients register with and get tokens from us.

Ports are chosen first (the provider must know each resource and the federated callback before
it starts), then everything starts; the provider and the servers always stop at the end.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.e2e.servers import (
    BASE_ENV,
    PYTHON,
    Deployment,
    ServerProcess,
    build_deployment,
    clean_environ,
    free_port,
)
from tests.idp.provider import IdentityProvider, start_provider

OTHER_JWT_RESOURCE = "https://other.example/mcp"  # resources the provider knows, not ours
OTHER_OPAQUE_RESOURCE = "https://other-opaque.example/mcp"
FEDERATED_CLIENT_ID = "mcp-reference-as"
RS_BASIC_CLIENT_ID = "rs-basic"
RS_POST_CLIENT_ID = "rs-post"


@dataclass
class World:
    idp: IdentityProvider
    jwt: Deployment
    introspection: Deployment
    federated: Deployment
    rs_basic_secret: str
    rs_post_secret: str

    def deployments(self) -> list[Deployment]:
        return [self.jwt, self.introspection, self.federated]

    def logs(self) -> str:
        parts = [f"--- oidc-provider log ---\n{self.idp.log_tail()}"]
        parts += [f"--- {d.label} ---\n{d.logs()}" for d in self.deployments()]
        return "\n".join(parts)


def settings_of(deployment: Deployment, **overrides: object) -> Settings:
    """The settings a deployment's processes run with (to build the same validator in-process)."""
    values: dict[str, object] = {name.lower(): value for name, value in deployment.env.items()}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def mcp_server_alone(workdir: Path, env: dict[str, str]) -> Deployment:
    """Only `python -m mcp_server` (what `make dev-mcp` runs), trusting AUTH_SERVER_URL."""
    port = free_port()
    settings_env = {**BASE_ENV, "AUTH_MODE": "external", "MCP_PORT": str(port), **env}
    deployment = Deployment("external", "memory", port, None, settings_env, workdir)
    deployment.processes.append(
        ServerProcess(
            "mcp_server",
            [PYTHON, "-m", "mcp_server", "--port", str(port)],
            clean_environ(settings_env),
            f"http://127.0.0.1:{port}/healthz",
            workdir,
        )
    )
    return deployment


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("idp")
    idp_port = free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    basic_secret, post_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    upstream_secret = secrets.token_urlsafe(24)

    jwt_mode = mcp_server_alone(
        root / "jwt",
        {
            "AUTH_SERVER_URL": issuer,
            "TOKEN_FORMAT": "jwt",
            "INTROSPECTION_CLIENT_ID": RS_BASIC_CLIENT_ID,
            "INTROSPECTION_CLIENT_SECRET": basic_secret,
        },
    )
    introspection_mode = mcp_server_alone(
        root / "introspection",
        {
            "AUTH_SERVER_URL": issuer,
            "TOKEN_FORMAT": "opaque",
            "INTROSPECTION_CLIENT_ID": RS_POST_CLIENT_ID,
            "INTROSPECTION_CLIENT_SECRET": post_secret,
            "INTROSPECTION_AUTH_METHOD": "client_secret_post",
            "INTROSPECTION_CACHE_TTL": "0",  # a revoked token is refused on the very next request
        },
    )
    federated = build_deployment(
        "internal",
        "memory",
        root / "federated",
        env={
            "UPSTREAM_OIDC_ISSUER": issuer,
            "UPSTREAM_OIDC_CLIENT_ID": FEDERATED_CLIENT_ID,
            "UPSTREAM_OIDC_CLIENT_SECRET": upstream_secret,
        },
    )
    idp = start_provider(
        root / "provider",
        idp_port,
        resources={
            jwt_mode.mcp_url: {"format": "jwt", "ttl": 600},
            introspection_mode.mcp_url: {"format": "opaque", "ttl": 600},
            OTHER_JWT_RESOURCE: {"format": "jwt", "ttl": 600},
            OTHER_OPAQUE_RESOURCE: {"format": "opaque", "ttl": 600},
        },
        clients=[
            {
                "client_id": RS_BASIC_CLIENT_ID,
                "client_secret": basic_secret,
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            {
                "client_id": RS_POST_CLIENT_ID,
                "client_secret": post_secret,
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_post",
            },
            {
                "client_id": FEDERATED_CLIENT_ID,
                "client_secret": upstream_secret,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": [federated.base_url + "/login/callback"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
        ],
        rfc8414=False,
    )
    world = World(idp, jwt_mode, introspection_mode, federated, basic_secret, post_secret)
    try:
        # Started from this thread: the servers die with the thread that started them
        # (PR_SET_PDEATHSIG), so not from a worker pool.
        for deployment in world.deployments():
            deployment.start()
        yield world
    finally:
        for deployment in world.deployments():
            deployment.stop()
        idp.stop()


@pytest.fixture(scope="session")
def idp(world: World) -> IdentityProvider:
    return world.idp


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On failure, attach the provider's and the servers' logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        running = getattr(item, "funcargs", {}).get("world")
        if isinstance(running, World):
            report.sections.append(("provider and server logs", running.logs()))
