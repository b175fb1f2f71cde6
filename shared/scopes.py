"""The scope catalogue: every scope this deployment knows, one row each.

Everything else is derived from the rows: the authorization server's `scopes_supported` and its
validation of requested scopes (/authorize, /token, registration), the consent page's wording,
the MCP server's protected resource metadata, its 401 and 403 challenges and the scopes a tool
may declare. Two tables, kept apart:

- `SERVER_SCOPES`: the MCP server's own `mcp:*` scopes, which MCP operations need
  (`mcp_server/protection/scopes.py` maps methods onto them). A fork keeps them as they are.
- `APP_SCOPES`: the scopes this app's tools declare (`mcp_server/features/`). A fork adds its
  rows here (docs/extending.md).

A row implying another honours scope hierarchies (MCP 2026-07-28: `notes:write` implies
`notes:read`). A baseline row is granted when a client asks for nothing in particular and is what
the 401 challenge and the protected resource metadata offer: everything that only reads.
Anything more is a step-up (403 insufficient_scope, then a new authorization).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): no space, `"` or `\`, so a
# name is safe inside a quoted WWW-Authenticate parameter.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class Scope:
    """One row of the catalogue."""

    name: str
    description: str
    """What the user allows, in their words: the consent page shows it."""
    implies: tuple[str, ...] = ()
    """Narrower scopes a token holding this one also has."""
    baseline: bool = False
    """Granted when a client asks for nothing in particular; offered by the 401 challenge."""


# --- the MCP server's scopes -----------------------------------------------------------------------
TOOLS_READ = "mcp:tools:read"
RESOURCES_READ = "mcp:resources:read"
PROMPTS_READ = "mcp:prompts:read"

SERVER_SCOPES: tuple[Scope, ...] = (
    Scope(TOOLS_READ, "See the server's tools and use the ones that only read", baseline=True),
    Scope(RESOURCES_READ, "Read the server's resources and subscribe to changes", baseline=True),
    Scope(PROMPTS_READ, "Use the server's prompt templates and completions", baseline=True),
)

# --- this app's scopes (a fork adds its rows here) -------------------------------------------------
NOTES_READ = "notes:read"
NOTES_WRITE = "notes:write"
# The demo downstream API's (downstream/, token exchange: docs/agent-identity.md): a tool may get a
# token for that API, acting for the user, with this scope.
PROFILE_READ = "profile:read"

APP_SCOPES: tuple[Scope, ...] = (
    Scope(NOTES_READ, "Read your notes", baseline=True),
    Scope(NOTES_WRITE, "Add and delete your notes", implies=(NOTES_READ,)),
    Scope(PROFILE_READ, "Let this server's tools read your profile at the profile service for you"),
)


class ScopeCatalogue:
    """The rows, checked once, and the questions every other module asks of them."""

    def __init__(self, *tables: Iterable[Scope]) -> None:
        rows = [row for table in tables for row in table]
        self._rows = {row.name: row for row in rows}
        if len(self._rows) != len(rows):
            raise ValueError("a scope is listed twice in the catalogue")
        for row in rows:
            if not _SCOPE_TOKEN.fullmatch(row.name):
                raise ValueError(f"{row.name!r} is not an RFC 6749 scope token")
            if not row.description.strip():
                raise ValueError(f"scope {row.name!r} needs a description for the consent page")
            unknown = [name for name in row.implies if name not in self._rows]
            if unknown:
                raise ValueError(f"scope {row.name!r} implies unknown scope(s) {unknown}")
        self.names: tuple[str, ...] = tuple(self._rows)
        """Every scope, in catalogue order (the AS's `scopes_supported`)."""
        self.baseline: tuple[str, ...] = tuple(row.name for row in rows if row.baseline)
        """What a client gets when it asks for nothing in particular."""
        self._order = {name: index for index, name in enumerate(self.names)}

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __iter__(self) -> Iterator[Scope]:
        return iter(self._rows.values())

    def describe(self, name: str) -> str:
        """The consent page's wording for `name` (the name itself for a scope not listed)."""
        row = self._rows.get(name)
        return row.description if row is not None else name

    def unknown(self, scopes: Iterable[str]) -> list[str]:
        """The scopes not in the catalogue, in the order given."""
        return [scope for scope in scopes if scope not in self._rows]

    def expand(self, scopes: Iterable[str]) -> frozenset[str]:
        """The scopes granted plus every scope they imply (transitively)."""
        result = set(scopes)
        pending = list(result)
        while pending:
            row = self._rows.get(pending.pop())
            for implied in row.implies if row is not None else ():
                if implied not in result:
                    result.add(implied)
                    pending.append(implied)
        return frozenset(result)

    def ordered(self, scopes: Iterable[str]) -> list[str]:
        """`scopes` without duplicates, in catalogue order (unlisted ones last, by name)."""
        return sorted(set(scopes), key=lambda name: (self._order.get(name, len(self._order)), name))


CATALOGUE = ScopeCatalogue(SERVER_SCOPES, APP_SCOPES)


def parse(scope: str | None) -> tuple[str, ...]:
    """Split an RFC 6749 scope string, dropping duplicates and keeping order."""
    return tuple(dict.fromkeys((scope or "").split()))
