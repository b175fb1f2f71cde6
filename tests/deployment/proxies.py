"""docs/deployment.md's reverse proxies, run for real: Debian's nginx and Caddy in front of the
real servers, over TLS with a throwaway certificate, on free 127.0.0.1 ports.

The site configurations are the page's own `file=` blocks, changed only where a test must: the
public names become 127.0.0.1 on free ports (one port per name, since both names are 127.0.0.1
here), Let's Encrypt's certificate paths become the throwaway certificate's, the upstream ports
become the servers' free ports, and in internal mode the authorization server's site is left out,
as the page says. nginx gets a main configuration of its own (pid, logs and temporary files in the
test's folder, no daemon); Caddy gets global options (no admin endpoint, loopback only, no
certificate authority of its own, no trust-store installation). Both run as child processes of the
test, stopped by the fixture (and by the kernel if the test process dies).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.docs.runnable import file_block
from tests.fixtures.launch import accepts_connections, die_with_parent
from tests.fixtures.waits import wait_until

GUIDE = "docs/deployment.md"
NGINX_SITE = "/etc/nginx/sites-available/mcp-reference-server"
CADDYFILE = "/etc/caddy/Caddyfile"
MCP_NAME = "mcp.example.com"
AUTH_NAME = "auth.example.com"
DEV_MCP_UPSTREAM = "127.0.0.1:3232"
DEV_AUTH_UPSTREAM = "127.0.0.1:3001"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

ProxyKind = Literal["nginx", "caddy"]


@dataclass(frozen=True)
class Certificate:
    """A throwaway CA and a server certificate it signed (for 127.0.0.1 and the page's names)."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts the throwaway CA (and nothing else) verifies with."""
        return ssl.create_default_context(cafile=str(self.ca))


def throwaway_certificate(directory: Path) -> Certificate:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-reference-server throwaway test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName(MCP_NAME),
        x509.DNSName(AUTH_NAME),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MCP_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificate(directory / "ca.pem", directory / "fullchain.pem", directory / "privkey.pem")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@dataclass(frozen=True)
class Routes:
    """Where the proxy listens for each public name, and where it sends each name's requests."""

    listen: dict[str, int]  # public name -> port on 127.0.0.1 (TLS)
    upstream: dict[str, int]  # development upstream ("127.0.0.1:3232") -> the server's real port
    http_port: int  # plain http (nginx's redirect to https)

    def public_url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.listen[name]}"


def _blocks(text: str, opening: re.Pattern[str]) -> list[tuple[int, int]]:
    """(start, end) of each top-level block whose first line matches `opening`, braces counted
    outside comments."""
    found = []
    for match in opening.finditer(text):
        depth, index = 0, match.start()
        while index < len(text):
            char = text[index]
            if char == "#":
                index = text.index("\n", index)
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    found.append((match.start(), index + 1))
                    break
            index += 1
    return found


def _names(block: str) -> list[str]:
    match = re.search(r"^\s*server_name\s+([^;]+);", block, re.MULTILINE)
    return match[1].split() if match else []


def _apply_upstreams(text: str, routes: Routes) -> str:
    for development, port in routes.upstream.items():
        text = text.replace(development, f"127.0.0.1:{port}")
    return text


def nginx_site(routes: Routes, certificate: Certificate) -> str:
    """The page's nginx site, adapted as the module docstring says."""
    text = file_block(GUIDE, NGINX_SITE).code
    pieces = []
    last = 0
    for start, end in _blocks(text, re.compile(r"^server\s*\{", re.MULTILINE)):
        pieces.append(text[last:start])
        block = text[start:end]
        names = [name for name in _names(block) if name in routes.listen]
        if not names:
            last = end  # a site this mode leaves out (internal mode: the authorization server)
            continue
        block = re.sub(r"^\s*listen\s+\[::\]:\d+[^;]*;\n", "", block, flags=re.MULTILINE)
        block = re.sub(r"server_name\s+[^;]+;", f"server_name {' '.join(names)};", block)
        block = re.sub(r"listen\s+80;", f"listen 127.0.0.1:{routes.http_port};", block)
        block = re.sub(r"listen\s+443 ssl;", f"listen 127.0.0.1:{routes.listen[names[0]]} ssl;", block)
        for name in (MCP_NAME, AUTH_NAME):
            block = block.replace(f"/etc/letsencrypt/live/{name}/fullchain.pem", str(certificate.cert))
            block = block.replace(f"/etc/letsencrypt/live/{name}/privkey.pem", str(certificate.key))
        pieces.append(block)
        last = end
    pieces.append(text[last:])
    return _apply_upstreams("".join(pieces), routes)


def caddyfile(routes: Routes, certificate: Certificate, storage: Path) -> str:
    """The page's Caddyfile, adapted as the module docstring says, under test-only global options."""
    text = file_block(GUIDE, CADDYFILE).code
    pieces = []
    last = 0
    for start, end in _blocks(text, re.compile(r"^[a-z0-9.-]+\s*\{", re.MULTILINE)):
        pieces.append(text[last:start])
        block = text[start:end]
        name = block.split()[0]
        if name in routes.listen:
            tls = f"\ttls {certificate.cert} {certificate.key}\n"
            block = block.replace(f"{name} {{\n", f"https://127.0.0.1:{routes.listen[name]} {{\n{tls}", 1)
            pieces.append(block)
        last = end
    pieces.append(text[last:])
    options = (
        "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n"
        f"\thttp_port {routes.http_port}\n\tauto_https disable_redirects\n\tskip_install_trust\n"
        f"\tstorage file_system {storage}\n}}\n\n"
    )
    return options + _apply_upstreams("".join(pieces), routes)


def require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        pytest.fail(
            f"{binary} is missing: run `make system-deps` (scripts/ensure-system-deps.sh installs "
            f"Debian's {binary}). These tests fail rather than skip.",
            pytrace=False,
        )
    return path


class Proxy:
    """nginx or Caddy as a child process, serving the page's configuration for `routes`."""

    def __init__(self, kind: ProxyKind, routes: Routes, certificate: Certificate, workdir: Path) -> None:
        self.kind = kind
        self.routes = routes
        self.workdir = workdir
        self.log = workdir / f"{kind}.log"
        self._process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        if kind == "nginx":
            self.config = workdir / "nginx.conf"
            (workdir / "sites").mkdir(exist_ok=True)
            (workdir / "temp").mkdir(exist_ok=True)
            (workdir / "sites" / "mcp-reference-server").write_text(nginx_site(routes, certificate))
            self.config.write_text(self._nginx_main())
            binary = require("nginx")
            self._check = [binary, "-t", "-p", str(workdir), "-c", str(self.config), "-e", str(self.log)]
            self._command = [*self._check[:1], *self._check[2:], "-g", "daemon off;"]
            self._env = dict(os.environ)
        else:
            self.config = workdir / "Caddyfile"
            self.config.write_text(caddyfile(routes, certificate, workdir / "data"))
            binary = require("caddy")
            self._check = [binary, "validate", "--config", str(self.config), "--adapter", "caddyfile"]
            self._command = [binary, "run", "--config", str(self.config), "--adapter", "caddyfile"]
            home = workdir / "home"
            self._env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(home),
                "XDG_DATA_HOME": str(home / "data"),
                "XDG_CONFIG_HOME": str(home / "config"),
            }

    def _nginx_main(self) -> str:
        w = self.workdir
        temp = "\n".join(
            f"    {kind}_temp_path {w}/temp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx's workers would switch to `nobody`, which cannot enter the test's folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"{user}worker_processes 1;\npid {w}/nginx.pid;\nerror_log {self.log} info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log {w}/access.log;\n{temp}\n    include {w}/sites/*;\n}}\n"
        )

    def start(self) -> Proxy:
        checked = subprocess.run(
            self._check, env=self._env, capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise AssertionError(
                f"{self.kind} refuses the configuration of docs/deployment.md:\n"
                f"{checked.stdout}{checked.stderr}\n--- {self.config}:\n{self.config.read_text()}"
            )
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self._command,
                env=self._env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        process = self._process
        for port in self.routes.listen.values():

            def listening(port: int = port) -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"{self.kind} exited before listening on {port}:\n{self.log_tail()}")
                return accepts_connections(port)

            try:
                wait_until(listening, f"{self.kind} to listen on {port}", within=START_TIMEOUT)
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # nginx: fast shutdown (workers too); caddy: graceful, then exits
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return "(no log)"
