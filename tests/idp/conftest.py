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

`path_world` is the same three deployments against issuers with a path, shaped like Scalekit
(docs/identity-providers.md): one "environment" at http://127.0.0.1:PORT serving a provider per
resource at /resources/<resource id>, each its own issuer, all signing with one key published at
the environment's /keys. RFC 8414 metadata only (path-inserted and path-appended; OpenID discovery
is 404 there, as at Scalekit), JWT access tokens whose `iss` is the environment URL and whose `aud`
is only the resource ID (Scalekit with no Server URL set), so the MCP servers run with
ACCEPTED_ISSUERS and ACCEPTED_AUDIENCES; opaque tokens for the resource ID by introspection at the
resource's own path; federated login at a third path (with OpenID discovery, which our login
step reads). A fourth resource of the same environment, `res_other`, is another deployment's, and
a fifth issuer is shaped like Entra ID's v2.0 one (`/<tenant id>/v2.0`, OpenID discovery only).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.settings import Settings
from shared.validation import TokenRejected
from shared.validators.jwt import JwtValidator
from tests.e2e.servers import (
    BASE_ENV,
    PYTHON,
    Deployment,
    ServerProcess,
    build_deployment,
    clean_environ,
    free_port,
)
from tests.idp.provider import IdentityProvider, Mount, start_provider

OTHER_JWT_RESOURCE = "https://other.example/mcp"  # resources the provider knows, not ours
OTHER_OPAQUE_RESOURCE = "https://other-opaque.example/mcp"
FEDERATED_CLIENT_ID = "mcp-reference-as"
RS_BASIC_CLIENT_ID = "rs-basic"
RS_POST_CLIENT_ID = "rs-post"
# The path world's resource IDs (Scalekit's look like res_92015146095).
JWT_RESOURCE_ID = "res_100000000001"
OPAQUE_RESOURCE_ID = "res_100000000002"
LOGIN_RESOURCE_ID = "res_100000000003"
OTHER_RESOURCE_ID = "res_100000000009"
OTHER_DEPLOYMENT_URL = "https://other-deployment.example/mcp"
# An issuer shaped like Entra ID's v2.0 one (https://login.microsoftonline.com/<tenant id>/v2.0):
# OpenID discovery only; its tokens are forged with the provider's key in Entra's shape.
ENTRA_TENANT_PATH = "/6b1a2c3d-0000-4000-8000-00000000a11c/v2.0"


def resource_server_client(
    client_id: str, secret: str, method: str = "client_secret_basic"
) -> dict[str, Any]:
    """A client registered at the provider that may only introspect (the MCP server's credential)."""
    return {
        "client_id": client_id,
        "client_secret": secret,
        "grant_types": [],
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": method,
    }


def federated_client(secret: str, deployment: Deployment) -> dict[str, Any]:
    """Our authorization server's client at the provider (federated login, UPSTREAM_OIDC_*)."""
    return {
        "client_id": FEDERATED_CLIENT_ID,
        "client_secret": secret,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": [deployment.base_url + "/login/callback"],
        "token_endpoint_auth_method": "client_secret_basic",
    }


async def rejection(settings: Settings, token: str) -> str | None:
    """Why a JWT validator built from `settings` refuses `token` (None: it accepts it)."""
    validator = JwtValidator.from_settings(settings)
    try:
        await validator.validate(token)
    except TokenRejected as rejected:
        return rejected.reason
    finally:
        await validator.aclose()
    return None


@contextlib.contextmanager
def running(idp: IdentityProvider, deployments: list[Deployment]) -> Iterator[None]:
    """Start the deployments (the provider already runs); stop everything, whatever happens.
    Started from this thread: the servers die with the thread that started them
    (PR_SET_PDEATHSIG), so not from a worker pool."""
    try:
        for deployment in deployments:
            deployment.start()
        yield
    finally:
        for deployment in deployments:
            deployment.stop()
        idp.stop()


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
            resource_server_client(RS_BASIC_CLIENT_ID, basic_secret),
            resource_server_client(RS_POST_CLIENT_ID, post_secret, "client_secret_post"),
            federated_client(upstream_secret, federated),
        ],
        rfc8414=False,
    )
    world = World(idp, jwt_mode, introspection_mode, federated, basic_secret, post_secret)
    with running(idp, world.deployments()):
        yield world


@pytest.fixture(scope="session")
def idp(world: World) -> IdentityProvider:
    return world.idp


@dataclass
class PathWorld:
    idp: IdentityProvider  # its `issuer` is the environment's URL
    jwt: Deployment
    introspection: Deployment
    federated: Deployment
    rs_secret: str

    def issuer_of(self, resource_id: str) -> str:
        return f"{self.idp.issuer}/resources/{resource_id}"

    def deployments(self) -> list[Deployment]:
        return [self.jwt, self.introspection, self.federated]

    def logs(self) -> str:
        parts = [f"--- oidc-provider log ---\n{self.idp.log_tail()}"]
        parts += [f"--- {d.label} ---\n{d.logs()}" for d in self.deployments()]
        return "\n".join(parts)


@pytest.fixture(scope="session")
def path_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PathWorld]:
    root = tmp_path_factory.mktemp("idp-path")
    port = free_port()
    environment = f"http://127.0.0.1:{port}"
    rs_secret, upstream_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)

    def resource_issuer(resource_id: str) -> str:
        return f"{environment}/resources/{resource_id}"

    jwt_mode = mcp_server_alone(
        root / "jwt",
        {
            "AUTH_SERVER_URL": resource_issuer(JWT_RESOURCE_ID),
            "TOKEN_FORMAT": "jwt",
            "ACCEPTED_AUDIENCES": json.dumps([JWT_RESOURCE_ID]),
            "ACCEPTED_ISSUERS": json.dumps([environment]),
        },
    )
    introspection_mode = mcp_server_alone(
        root / "introspection",
        {
            "AUTH_SERVER_URL": resource_issuer(OPAQUE_RESOURCE_ID),
            "TOKEN_FORMAT": "opaque",
            "ACCEPTED_AUDIENCES": json.dumps([OPAQUE_RESOURCE_ID]),
            "INTROSPECTION_CLIENT_ID": RS_BASIC_CLIENT_ID,
            "INTROSPECTION_CLIENT_SECRET": rs_secret,
            "INTROSPECTION_CACHE_TTL": "1",  # a revocation at the provider shows within a second
        },
    )
    federated = build_deployment(
        "internal",
        "memory",
        root / "federated",
        env={
            "UPSTREAM_OIDC_ISSUER": resource_issuer(LOGIN_RESOURCE_ID),
            "UPSTREAM_OIDC_CLIENT_ID": FEDERATED_CLIENT_ID,
            "UPSTREAM_OIDC_CLIENT_SECRET": upstream_secret,
        },
    )

    def scalekit_like(
        resource_id: str, resources: dict[str, dict[str, Any]], *clients: dict[str, Any]
    ) -> Mount:
        """A resource as Scalekit serves one: issuer at /resources/<id>, RFC 8414 only, keys at the
        environment's /keys, JWT access tokens naming the environment as `iss`."""
        return Mount(
            f"/resources/{resource_id}",
            resources,
            list(clients),
            access_token_issuer=environment,
            jwks_at_root=True,
            openid_discovery=False,
        )

    other_audience = [OTHER_DEPLOYMENT_URL, OTHER_RESOURCE_ID]  # Scalekit with a Server URL set
    idp = start_provider(
        root / "provider",
        port,
        mounts=[
            scalekit_like(
                JWT_RESOURCE_ID, {jwt_mode.mcp_url: {"format": "jwt", "audience": JWT_RESOURCE_ID}}
            ),
            scalekit_like(
                OPAQUE_RESOURCE_ID,
                {introspection_mode.mcp_url: {"format": "opaque", "audience": OPAQUE_RESOURCE_ID}},
                resource_server_client(RS_BASIC_CLIENT_ID, rs_secret),
            ),
            scalekit_like(
                OTHER_RESOURCE_ID, {OTHER_DEPLOYMENT_URL: {"format": "jwt", "audience": other_audience}}
            ),
            Mount(ENTRA_TENANT_PATH, {}, rfc8414=False),
            Mount(
                f"/resources/{LOGIN_RESOURCE_ID}",
                {},
                clients=[federated_client(upstream_secret, federated)],
            ),
        ],
        rfc8414=True,
    )
    world = PathWorld(idp, jwt_mode, introspection_mode, federated, rs_secret)
    with running(idp, world.deployments()):
        yield world


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On failure, attach the provider's and the servers' logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "setup"):
        for name in ("world", "path_world"):
            running = getattr(item, "funcargs", {}).get(name)
            if isinstance(running, World | PathWorld):
                report.sections.append((f"provider and server logs ({name})", running.logs()))
