"""Run the third-party OpenID provider (oidc-provider on Node 22, `oidc_provider.mjs`) for tests.

`start_provider(...)` writes the configuration the test chose (resources and their token formats,
pre-registered clients, users, and the signing key) to a file, starts Node on 127.0.0.1, waits
for its ready line and returns an `IdentityProvider`; `stop()` always ends the process (SIGTERM,
then SIGKILL), and the kernel ends it if the test process dies (PR_SET_PDEATHSIG).

The test generates the provider's RSA signing key itself, so it can also forge tokens with the
provider's *real* key and change one thing at a time (another `iss`, an `exp` in the past):
each negative then fails for exactly one reason.

`start_provider(..., mounts=[Mount(...), ...])` starts one "environment" with a provider per
path instead, each its own issuer (`http://127.0.0.1:PORT/resources/<id>`, the shape of
Scalekit's per-resource issuers), all signing with the one key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.e2e.node_tools import NODE_BIN, node_env
from tests.e2e.servers import REPO_ROOT, _die_with_parent

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
MODULE_DIR = REPO_ROOT / ".cache" / "oidc-provider" / "node_modules" / "oidc-provider"
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

USERS: dict[str, dict[str, str]] = {
    "alice": {"password": "alice-password", "email": "alice@example.com", "name": "Alice Example"},
    "bob": {"password": "bob-password", "email": "bob@example.com", "name": "Bob Example"},
}


def require_installed() -> None:
    """Fail (never skip) with the command that installs what is missing."""
    if not (NODE_BIN / "node").exists() or not (MODULE_DIR / "package.json").exists():
        pytest.fail(
            f"oidc-provider ({MODULE_DIR}) or Node 22 ({NODE_BIN}) is missing: run `make node-tools` "
            "(scripts/ensure-node-tools.sh) first. These tests fail rather than skip.",
            pytrace=False,
        )


def new_signing_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


@dataclass
class IdentityProvider:
    issuer: str
    port: int
    key: RSAKey
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "oidc-provider.log"

    def metadata(self, issuer: str | None = None) -> dict[str, Any]:
        """The provider's OpenID discovery document; for a mount's `issuer`, its RFC 8414 document
        (path-inserted: mounts shaped like Scalekit serve no OpenID discovery)."""
        with httpx2.Client(timeout=5.0, trust_env=False) as http:
            if issuer is None:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            else:
                path = issuer.removeprefix(self.issuer)
                url = f"{self.issuer}/.well-known/oauth-authorization-server{path}"
            document: dict[str, Any] = http.get(url).json()
        return document

    def stats(self) -> dict[str, int]:
        with httpx2.Client(timeout=5.0, trust_env=False) as http:
            counts: dict[str, int] = http.get(self.issuer.rstrip("/") + "/_test/stats").json()
        return counts

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    # --- tokens as an attacker (or a broken provider) would make them ----------------------------------
    def claims(self, subject: str, audience: str, scope: str | None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": "forged-client",
            "scope": scope,
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(8),
        }
        values.update(overrides)
        return {name: value for name, value in values.items() if value is not None}

    def sign(
        self, claims: dict[str, Any], *, key: RSAKey | None = None, header: dict[str, Any] | None = None
    ) -> str:
        """An RS256 JWT signed with the provider's own key (or `key`), typ at+jwt unless overridden."""
        key = key or self.key
        protected = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
        return jwt.encode(protected, claims, key)

    def handmade(self, header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
        """A JWT assembled by hand: `alg: none` (no signature) or HS256 keyed with `hmac_key`."""

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        if hmac_key is None:
            return signing_input + "."
        return signing_input + "." + b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())

    def public_key_pem(self) -> bytes:
        """The provider's public key as PEM: what an alg-confusion attacker uses as an HMAC secret."""
        pem: bytes = self.key.as_pem(private=False)
        return pem


@dataclass
class Mount:
    """One provider of an environment, at `path` (its issuer is the environment URL + path).

    `access_token_issuer`: the `iss` its JWT access tokens carry instead of its issuer (Scalekit
    puts the environment URL there). `jwks_at_root`: its metadata names the environment's /keys
    as jwks_uri. `openid_discovery`: False answers 404 at <issuer>/.well-known/openid-configuration;
    `rfc8414`: False answers 404 at both RFC 8414 locations (OpenID discovery only, as at Entra ID).
    A resource's "audience" (string or list) is the `aud` of its tokens instead of the resource URL.
    """

    path: str
    resources: dict[str, dict[str, Any]]
    clients: list[dict[str, Any]] = field(default_factory=list)
    access_token_issuer: str | None = None
    jwks_at_root: bool = False
    openid_discovery: bool = True
    rfc8414: bool = True

    def issuer(self, environment: str) -> str:
        return environment + self.path

    def config(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "resources": self.resources,
            "clients": self.clients,
            "access_token_issuer": self.access_token_issuer,
            "jwks_at_root": self.jwks_at_root,
            "openid_discovery": self.openid_discovery,
            "rfc8414": self.rfc8414,
        }


def start_provider(
    workdir: Path,
    port: int,
    *,
    resources: dict[str, dict[str, Any]] | None = None,
    clients: list[dict[str, Any]] | None = None,
    mounts: list[Mount] | None = None,
    rfc8414: bool = True,
    key: RSAKey | None = None,
    issuer: str | None = None,
    id_jag: dict[str, Any] | None = None,
) -> IdentityProvider:
    """Start oidc-provider on 127.0.0.1:port; returns once it printed its ready line. With
    `mounts`, `issuer` is the environment's root URL and each mount has its own issuer."""
    require_installed()
    workdir.mkdir(parents=True, exist_ok=True)
    key = key or new_signing_key("idp-key-1")
    issuer = issuer or f"http://127.0.0.1:{port}"
    provider = IdentityProvider(issuer=issuer, port=port, key=key, workdir=workdir)
    config: dict[str, Any] = {
        "port": port,
        "rfc8414": rfc8414,
        "registered_scope_limits": False,
        "users": USERS,
        "jwks": {"keys": [key.as_dict(private=True)]},
    }
    if mounts is None:
        config.update(issuer=provider.issuer, resources=resources or {}, clients=clients or [])
        if id_jag is not None:  # an enterprise identity provider: ID-JAGs by token exchange
            config["id_jag"] = id_jag
    else:
        config["mounts"] = [mount.config() for mount in mounts]
    config_path = workdir / "oidc-provider.json"
    config_path.write_text(json.dumps(config))
    log = provider.log_path.open("ab")
    provider.process = subprocess.Popen(
        [str(NODE_BIN / "node"), str(SCRIPT)],
        env=node_env(IDP_CONFIG=str(config_path)),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        preexec_fn=_die_with_parent,
    )
    log.close()
    ready = threading.Event()
    lines: list[str] = []

    def read_stdout() -> None:
        assert provider.process is not None
        assert provider.process.stdout is not None
        for raw in provider.process.stdout:
            line = raw.decode(errors="replace").strip()
            lines.append(line)
            if line.startswith("{") and '"ready"' in line:
                ready.set()

    threading.Thread(target=read_stdout, daemon=True).start()
    if not ready.wait(STARTUP_TIMEOUT):
        provider.stop()
        raise RuntimeError(f"oidc-provider did not start:\n{lines}\n{provider.log_tail()}")
    return provider
