"""What a server process checks and says when its app is built: the production check and the banner.

Development defaults (the demo user, the published introspection secret, AUTH_MODE=none...) are
what make `make dev-internal` work with no configuration. They are safe only where nobody else can
reach the server, so the check runs in both app factories (`mcp_server.app.create_app`,
`auth_server.app.create_auth_app`): every entry point builds its app through one of them, a fork
serving the factory with uvicorn included.

*Development* means: HOST is a loopback address, ALLOWED_HOSTS is empty (a tunnel or proxy name
makes a loopback server public), and every public URL (MCP_PUBLIC_URL, AUTH_ISSUER_URL, and the
issuer a bundled authorization server announces) is a loopback http URL. Anywhere else the app
refuses to be built while any development default is in effect, or while a public URL is unset or
plain http, with one line per problem naming the setting and the fix (docs/security.md, "The
production checklist the start-up check enforces", lists exactly these). In development the same
findings are a warning in the banner.

The banner: the URL to paste into a client, the mode, the issuer, the store, and in development
the demo login and which development defaults are active. Logged (stderr) when the app starts.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.settings import (
    Settings,
    SettingsError,
    is_loopback_host,
    is_loopback_http_url,
    unknown_setting_warnings,
)
from shared.storage.redis_url import parse_redis_url

logger = logging.getLogger("startup")

MIN_SECRET_LENGTH = 32
DEFAULT_INTROSPECTION_SECRET = str(Settings.model_fields["introspection_client_secret"].default)
NEW_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 - a command
SECURITY_DOC = "docs/security.md"


@dataclass(frozen=True, slots=True)
class AuthorizationServerFacts:
    """What the bundled authorization server of a process has configured (auth_server knows it)."""

    introspection_client: bool  # a client that authenticates with INTROSPECTION_CLIENT_SECRET
    demo_login: tuple[str, str] | None  # (user, password) of the built-in login, when in effect


@dataclass(frozen=True, slots=True)
class Role:
    """What one server process serves, as far as the check and the banner care."""

    name: str  # "MCP server", "authorization server"
    serves_mcp: bool
    authorization_server: AuthorizationServerFacts | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One line of the refusal: the setting that decides, what is wrong and how to fix it."""

    setting: str
    text: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.text}"


class UnsafeOutsideDevelopment(SettingsError):
    """The app refuses to be built: a development default outside development (exits readably)."""


def _configured_public_urls(settings: Settings) -> list[tuple[str, str]]:
    """(setting, URL) of the URLs set that clients are sent to: ours, and the issuer."""
    urls = [("MCP_PUBLIC_URL", settings.mcp_public_url), ("AUTH_ISSUER_URL", settings.auth_issuer_url)]
    if settings.auth_mode == "external" and not settings.auth_issuer_url:
        urls.append(("AUTH_SERVER_URL", settings.auth_server_url))  # then it is the issuer
    return [(setting, url) for setting, url in urls if url]


def public_urls(settings: Settings, role: Role) -> list[tuple[str, str]]:
    """(setting, URL) of every URL clients are told about by this process."""
    urls = []
    if settings.mcp_public_url:
        urls.append(("MCP_PUBLIC_URL", settings.mcp_public_url))
    if settings.auth_issuer_url:
        urls.append(("AUTH_ISSUER_URL", settings.auth_issuer_url))
    elif role.authorization_server is not None and settings.issuer != settings.mcp_base_url:
        urls.append((settings.issuer_setting, settings.issuer))  # the standalone AS's own issuer
    return urls


def _hostname(host_header: str) -> str:
    """`name[:port]` (a Host header value, as ALLOWED_HOSTS lists them) -> name."""
    try:
        return urlsplit("//" + host_header).hostname or host_header
    except ValueError:
        return host_header


def not_development_because(settings: Settings, role: Role) -> list[str]:
    """Why this is not development (empty: it is)."""
    reasons = []
    if not is_loopback_host(settings.host):
        reasons.append(f"HOST={settings.host} is not a loopback address")
    public_hosts = [host for host in settings.allowed_hosts if not is_loopback_host(_hostname(host))]
    if public_hosts:
        reasons.append(f"ALLOWED_HOSTS={','.join(public_hosts)} names public hosts")
    for setting, url in public_urls(settings, role):
        if not is_loopback_http_url(url):
            reasons.append(f"{setting}={url} is not a loopback http URL")
    return reasons


def development_defaults(settings: Settings, role: Role) -> list[Problem]:
    """Every development default in effect for this process, each with its fix."""
    problems = []
    facts = role.authorization_server
    if role.serves_mcp and settings.auth_mode == "none":
        problems.append(
            Problem(
                "AUTH_MODE",
                "none serves /mcp to anyone with no authentication; use internal or external "
                "(docs/auth-modes.md), or keep none on a loopback HOST or stdio",
            )
        )
    if facts is not None and facts.demo_login is not None:
        user, password = facts.demo_login
        problems.append(
            Problem(
                "AUTH_USERS",
                f"unset, so the built-in development user ({user} / {password}) can sign in; set "
                "AUTH_USERS to your users (hashes from scripts/hash-password.py) or sign users in at "
                "your provider with UPSTREAM_OIDC_ISSUER",
            )
        )
    if (facts is not None and facts.introspection_client) or (
        role.serves_mcp and settings.auth_mode == "external"
    ):
        problems += _secret_problems(
            "INTROSPECTION_CLIENT_SECRET",
            settings.introspection_client_secret,
            "the same value on the MCP server and the authorization server",
        )
    if settings.metrics_enabled and settings.metrics_token:
        problems += _secret_problems("METRICS_TOKEN", settings.metrics_token, "the one your scraper sends")
    if facts is not None:
        for index, entry in enumerate(settings.auth_clients):
            secret = entry.get("client_secret")
            if isinstance(secret, str):
                problems += _secret_problems(
                    f"AUTH_CLIENTS[{index}].client_secret", secret, "the one that client sends"
                )
        if settings.cimd_allow_loopback:
            problems.append(
                Problem(
                    "CIMD_ALLOW_LOOPBACK",
                    "true lets any caller make this server fetch client metadata documents from its "
                    "own loopback addresses (for tests and development); set it to false",
                )
            )
    return problems


def _secret_problems(setting: str, value: str, which: str) -> list[Problem]:
    if value == DEFAULT_INTROSPECTION_SECRET:
        wrong = "is the published development default"
    elif DEFAULT_INTROSPECTION_SECRET in value:
        wrong = "is the published development default with something added (guessable)"
    elif len(value) < MIN_SECRET_LENGTH:
        wrong = f"is shorter than {MIN_SECRET_LENGTH} characters (guessable offline)"
    else:
        return []
    return [Problem(setting, f"{wrong}; set a random value ({which}): {NEW_SECRET}")]


def production_problems(settings: Settings, role: Role) -> list[Problem]:
    """What must be set outside development besides replacing the defaults: the public URLs."""
    problems = []
    knows_resource = role.serves_mcp or role.authorization_server is not None
    if knows_resource and not settings.mcp_public_url:
        problems.append(
            Problem(
                "MCP_PUBLIC_URL",
                f"unset, so clients would be told {settings.mcp_resource_url} (from HOST and "
                "MCP_PORT); set it to the https URL clients reach the MCP server at, e.g. "
                "https://mcp.example.com",
            )
        )
    standalone_issuer_unset = not settings.auth_issuer_url and not settings.auth_server_url
    if role.authorization_server is not None and settings.auth_mode == "external" and standalone_issuer_unset:
        problems.append(
            Problem(
                "AUTH_ISSUER_URL",
                f"unset, so this authorization server's issuer would be {settings.issuer} (from "
                "HOST and AUTH_PORT); set it to the https URL clients reach it at",
            )
        )
    ours = (
        "tokens, codes and passwords would cross the network in clear; serve https (here or at "
        "your reverse proxy) and use the https:// URL"
    )
    theirs = (
        "the keys fetched from it, or the tokens sent to it, would cross the network unprotected "
        "(SEP-990 section 7.3); use its https:// URL"
    )
    urls = [(setting, url, ours) for setting, url in _configured_public_urls(settings)]
    urls += [(setting, url, theirs) for setting, url in _agent_identity_urls(settings)]
    for setting, url, why in urls:
        parts = urlsplit(url)
        if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
            problems.append(Problem(setting, f"{url} is plain http: {why}"))
    return problems


def _agent_identity_urls(settings: Settings) -> list[tuple[str, str]]:
    """(setting, URL) of the servers agent identity talks to (docs/agent-identity.md): the
    enterprise identity providers whose keys decide who gets a token, and the demo API that
    receives exchanged tokens."""
    urls = [("ENTERPRISE_IDP_ISSUERS", issuer) for issuer in settings.enterprise_idp_issuers]
    if settings.downstream_api_url:
        urls.append(("DOWNSTREAM_API_URL", settings.downstream_api_url))
    return urls


def check_deployment(settings: Settings, role: Role) -> list[Problem]:
    """Refuse (UnsafeOutsideDevelopment) outside development while anything is unsafe; in
    development return the development defaults in effect (the banner warns about them)."""
    defaults = development_defaults(settings, role)
    reasons = not_development_because(settings, role)
    if not reasons:
        return defaults
    problems = defaults + production_problems(settings, role)
    if problems:
        lines = [
            f"Refusing to start the {role.name}: this is not development ({'; '.join(reasons)}), "
            f"so every line below must be fixed ({SECURITY_DOC}):",
            *(f"  {problem}" for problem in _unique(problems)),
        ]
        raise UnsafeOutsideDevelopment("\n".join(lines))
    return []


class WorkersRefused(SettingsError):
    """More than one worker with a setting that would split state between them (exits readably)."""


def worker_problems(settings: Settings, role: Role) -> list[Problem]:
    """What makes WEB_CONCURRENCY > 1 wrong for this process, one problem per setting.

    uvicorn's workers share one listening socket and the kernel hands each new connection to
    whichever worker accepts it first: nothing in front of them (a balancer, a proxy) can choose
    the worker, so anything a request leaves in one worker's memory for a later request is lost
    whenever that request arrives on another connection, which clients do all the time (a GET
    stream beside POSTs, a pool, a reconnect). So such state is refused, not merely warned about:
    it would fail at random, not degrade.
    """
    workers = settings.web_concurrency
    if workers <= 1:
        return []
    problems = []
    if not settings.redis_url:
        problems.append(
            Problem(
                "REDIS_URL",
                f"unset, so each of the {workers} workers would keep its own in-memory store and a "
                "token, sign-in or note made through one would be unknown to the others; set REDIS_URL "
                "(every worker then shares everything) or run one worker",
            )
        )
    if role.serves_mcp and settings.mcp_session_mode == "stateful":
        problems.append(
            Problem(
                "MCP_SESSION_MODE",
                "stateful keeps each 2025-11-25 session in the worker that opened it, and no balancer "
                "can send the session's next connection back there (404 Session not found); set "
                "MCP_SESSION_MODE=stateless, or run one worker per port behind a balancer with session "
                "affinity (docs/operations.md)",
            )
        )
    if role.serves_mcp and settings.legacy_sse:
        problems.append(
            Problem(
                "LEGACY_SSE",
                "true serves the deprecated HTTP+SSE transport, whose /messages/ posts must reach the "
                "worker holding their /sse stream; set LEGACY_SSE=false, or run one worker",
            )
        )
    return problems


def check_workers(settings: Settings, role: Role) -> None:
    """Refuse (WorkersRefused) more than one worker while state would be split between them."""
    problems = worker_problems(settings, role)
    if problems:
        lines = [
            f"Refusing to start the {role.name} with WEB_CONCURRENCY={settings.web_concurrency} "
            'workers (docs/operations.md, "Several workers"):',
            *(f"  {problem}" for problem in problems),
        ]
        raise WorkersRefused("\n".join(lines))


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# --- the banner -------------------------------------------------------------------------------


def banner(settings: Settings, role: Role, *, transport: str = "http") -> list[str]:
    """The lines a person reads first: where to point a client, and what this process is."""
    lines = []
    if role.serves_mcp and transport == "stdio":
        lines.append("MCP server on stdio: the client that launched this process talks to it")
    elif role.serves_mcp:
        lines.append(f"MCP server ready. Connect your MCP client to {settings.mcp_resource_url}")
    else:
        lines.append(f"Authorization server ready. Issuer: {settings.issuer}")
        source = "MCP_PUBLIC_URL" if settings.mcp_public_url else "MCP_PUBLIC_URL unset: HOST and MCP_PORT"
        lines.append(f"  issues tokens for the MCP server at {settings.mcp_resource_url} ({source})")
    if role.serves_mcp and transport == "http":
        lines.append(f"  auth: {_auth_line(settings)}")
    lines.append(f"  store: {_store_line(settings)}")
    if settings.web_concurrency > 1 and transport == "http":
        lines.append(f"  workers: {settings.web_concurrency} processes on this port (WEB_CONCURRENCY)")
    facts = role.authorization_server
    if facts is not None and facts.demo_login is not None:
        lines.append(f"  sign in as {facts.demo_login[0]} / {facts.demo_login[1]} (the development user)")
    return lines


def _auth_line(settings: Settings) -> str:
    if settings.auth_mode == "none":
        return "none (AUTH_MODE=none: no authentication, loopback only)"
    if settings.auth_mode == "internal":
        return f"internal (authorization server in this process, issuer {settings.issuer})"
    how = {
        "auto": "a JWT locally when it publishes its keys, any other token by introspection",
        "jwt": "JWTs only, locally against its keys",
        "introspection": "introspection, every token",
    }[settings.token_validation]
    return (
        f"external (tokens from {settings.issuer}, set by {settings.issuer_setting}; checked: {how}, "
        f"TOKEN_VALIDATION={settings.token_validation})"
    )


def _store_line(settings: Settings) -> str:
    """Where the data lives, never with the password REDIS_URL may hold."""
    if not settings.redis_url:
        return "memory (everything is lost at restart; REDIS_URL keeps it)"
    location = parse_redis_url(settings.redis_url)
    nodes = ",".join(f"{host}:{port}" for host, port in location.nodes)
    if location.topology == "sentinel":
        where = f"Redis primary {location.service_name!r} (db {location.db}) watched by Sentinel at {nodes}"
    elif location.topology == "cluster":
        where = f"Redis Cluster at {nodes}"
    else:
        parts = urlsplit(settings.redis_url)
        where = f"Redis at {parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    prefix = f", key prefix {settings.redis_key_prefix!r}" if settings.redis_key_prefix else ""
    return where + prefix


def log_banner(settings: Settings, role: Role, *, defaults: list[Problem], transport: str = "http") -> None:
    """Log the banner, and in development a plain warning naming every default in effect."""
    for line in banner(settings, role, transport=transport):
        logger.info("%s", line)
    if defaults:
        names = ", ".join(dict.fromkeys(problem.setting for problem in defaults))
        logger.warning(
            "Development defaults are active (%s): fine on this machine, refused anywhere else; "
            "see %s before deploying",
            names,
            SECURITY_DOC,
        )
    if trusts_every_address(settings):
        logger.warning(
            "FORWARDED_ALLOW_IPS trusts every address: any client can choose the address its rate "
            "limits count under; list only your proxies unless nothing else can reach this server "
            "(docs/operations.md)"
        )


def trusts_every_address(settings: Settings) -> bool:
    """FORWARDED_ALLOW_IPS is `*`, or a network as wide (0.0.0.0/0, ::/0)."""
    return any(
        entry == "*" or ipaddress.ip_network(entry).prefixlen == 0 for entry in settings.forwarded_allow_ips
    )


def warn_unknown_settings() -> None:
    """Warn about variables of the environment or `.env` that look like settings but are none
    (REDIS_URI, AUTH_MOD): a typo would otherwise mean the default, silently."""
    for warning in unknown_setting_warnings():
        logger.warning("%s", warning)
