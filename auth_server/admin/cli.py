"""`python -m auth_server admin ...`: the admin API from a terminal.

    admin new-token                                   a token, and the digest the server needs
    admin clients list | show ID | disable ID | enable ID | delete ID
    admin grants list   (--user SUBJECT | --client CLIENT_ID | both)
    admin grants revoke (--user SUBJECT | --client CLIENT_ID | both | --grant GRANT_ID)
    admin keys list | rotate
    admin purge

It calls the running server over HTTP, always: the memory store lives in the server's process, a
rotated key must reach the server's own cache, and the server audits every action. By default it
calls this host's server as the settings describe it (AUTH_MODE, MCP_PORT or AUTH_PORT, HOST, the
issuer's path), so run it where the server runs, with the same settings; --url names another.
The admin token comes from the ADMIN_TOKEN environment variable or --token-file (a file, or - for
standard input), never from a command-line argument (anyone on the host sees those in `ps`), and
goes straight to that URL (no HTTP proxy from the environment). Output: the API's JSON answer;
errors on stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

import httpx2

from auth_server.admin.credentials import new_admin_token
from auth_server.urls import issuer_path
from shared.settings import Settings, load_settings

TOKEN_VARIABLE = "ADMIN_TOKEN"  # noqa: S105 - the variable's name
TIMEOUT = 60.0
_ANY_INTERFACE = {"0.0.0.0", "::", "[::]"}  # noqa: S104 - recognised, not bound


class CliError(Exception):
    """Ends the command with this message on stderr and exit status 1."""


def default_admin_url(settings: Settings) -> str:
    """This host's admin API as the settings describe the server (the AS is the MCP server's
    process in internal mode, its own in external mode)."""
    if settings.auth_mode == "none":
        raise CliError("AUTH_MODE=none runs no authorization server, so there is no admin API")
    host = "127.0.0.1" if settings.host in _ANY_INTERFACE else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = settings.auth_port if settings.auth_mode == "external" else settings.mcp_port
    return f"http://{host}:{port}{issuer_path(settings)}/admin"


def parser() -> argparse.ArgumentParser:
    """The command line; --url and --token-file go before or after the command."""
    top = argparse.ArgumentParser(prog="python -m auth_server admin", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    for options in (top, common):
        options.add_argument(
            "--url", help="the admin API's base URL (default: this host's server, from the settings)"
        )
        options.add_argument(
            "--token-file", help=f"read the admin token from this file (- for stdin), not ${TOKEN_VARIABLE}"
        )
    for option in common._actions:  # given after the command, they must not undo what came before it
        option.default = argparse.SUPPRESS
    commands = top.add_subparsers(dest="command", required=True)

    commands.add_parser(
        "new-token", parents=[common], help="print a new admin token and the digest for ADMIN_TOKEN_SHA256"
    )

    clients = commands.add_parser("clients", help="list, show, disable, enable or delete clients")
    client_actions = clients.add_subparsers(dest="action", required=True)
    client_actions.add_parser("list", parents=[common], help="every client this server knows")
    for action, text in (
        ("show", "one client, its users, grants and machine tokens"),
        ("disable", "refuse the client everywhere and end every token it holds"),
        ("enable", "let a disabled client in again (nothing it held comes back)"),
        ("delete", "end every token it holds and forget its registration or cached document"),
    ):
        client_actions.add_parser(action, parents=[common], help=text).add_argument("client_id")

    grants = commands.add_parser("grants", help="list or revoke grants by user or client")
    grant_actions = grants.add_subparsers(dest="action", required=True)
    for action, text in (("list", "the live grants"), ("revoke", "revoke them with every token in them")):
        sub = grant_actions.add_parser(action, parents=[common], help=text)
        sub.add_argument("--user", help="the user's subject (as whoami shows it)")
        sub.add_argument("--client", help="the client_id")
        if action == "revoke":
            sub.add_argument("--grant", help="one grant, by id")

    keys = commands.add_parser("keys", help="the JWT signing keys")
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_actions.add_parser("list", parents=[common], help="the keys published now")
    key_actions.add_parser("rotate", parents=[common], help="a new key signs from now on")

    commands.add_parser(
        "purge", parents=[common], help="remove what expired or ended but is still held (every page)"
    )
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "new-token":
            token, digest = new_admin_token()
            print(f"admin token (for the CLI's {TOKEN_VARIABLE}; shown only now):\n  {token}")
            print("for the server's settings (a comma-separated list: add it to any there):")
            print(f"  ADMIN_TOKEN_SHA256={digest}")
            return 0
        url = (args.url or default_admin_url(load_settings())).rstrip("/")
        with AdminClient(url, _token(args.token_file)) as api:
            print(json.dumps(run(api, args), indent=2))
        return 0
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run(api: AdminClient, args: argparse.Namespace) -> Any:
    if args.command == "clients":
        if args.action == "list":
            return api.call("GET", "/clients")
        path = f"/clients/{quote(args.client_id, safe='')}"
        if args.action == "show":
            return api.call("GET", path)
        if args.action == "delete":
            return api.call("DELETE", path)
        return api.call("PATCH", path, body={"disabled": args.action == "disable"})
    if args.command == "grants":
        if args.action == "revoke" and args.grant:
            if args.user or args.client:
                raise CliError("--grant names one grant: leave out --user and --client")
            return api.call("DELETE", f"/grants/{quote(args.grant, safe='')}")
        if not (args.user or args.client):
            raise CliError("name --user, --client, or both")
        selection = {
            name: value for name, value in (("subject", args.user), ("client_id", args.client)) if value
        }
        return api.call("GET" if args.action == "list" else "DELETE", "/grants", params=selection)
    if args.command == "keys":
        return api.call("GET" if args.action == "list" else "POST", "/signing-keys")
    return purge(api)


def purge(api: AdminClient) -> dict[str, Any]:
    """Every page of the server's purge, added up."""
    totals: dict[str, Any] = {"pages": 0}
    after = None
    while True:
        page = api.call("POST", "/purge", body={"after": after} if after else {})
        totals["pages"] += 1
        for name, value in page.items():
            if isinstance(value, int):
                totals[name] = totals.get(name, 0) + value
        after = page.get("next")
        if not after:
            return totals


def _token(token_file: str | None) -> str:
    if token_file == "-":  # noqa: S105 - standard input, not a secret
        token = sys.stdin.readline()
    elif token_file:
        try:
            with open(token_file, encoding="utf-8") as handle:
                token = handle.readline()
        except OSError as exc:
            raise CliError(f"cannot read --token-file: {exc.strerror}") from None
    else:
        token = os.environ.get(TOKEN_VARIABLE, "")
    token = token.strip()
    if not token:
        raise CliError(f"no admin token: set {TOKEN_VARIABLE} or pass --token-file (new-token makes one)")
    return token


class AdminClient:
    """The admin API over HTTP, its errors turned into CliError messages."""

    def __init__(self, url: str, token: str) -> None:
        self._url = url
        self._http = httpx2.Client(
            headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT, trust_env=False
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = self._http.request(method, self._url + path, params=params, json=body)
        except httpx2.HTTPError as exc:
            raise CliError(
                f"cannot reach the admin API at {self._url} ({type(exc).__name__}); is the server running?"
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and isinstance(answer, dict):
            return answer
        if not isinstance(answer, dict) or "error" not in answer:
            if response.status_code == 404:
                raise CliError(
                    f"no admin API at {self._url}: set ADMIN_TOKEN_SHA256 on that server (or check --url)"
                )
            raise CliError(f"{self._url}{path} answered {response.status_code}")
        raise CliError(f"{response.status_code} {answer['error']}: {answer.get('error_description', '')}")
