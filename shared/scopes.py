"""The scope model: the scopes this deployment knows, what they mean in words, and what implies what.

Both sides use it: the authorization server to validate requests and describe scopes on the
consent page, the MCP server to check each operation. A broader scope implies the narrower ones
(`notes:write` implies `notes:read`), as the 2026-07-28 authorization spec requires servers to
honour scope hierarchies.
"""

from __future__ import annotations

from collections.abc import Iterable

TOOLS_READ = "mcp:tools:read"
RESOURCES_READ = "mcp:resources:read"
PROMPTS_READ = "mcp:prompts:read"
NOTES_READ = "notes:read"
NOTES_WRITE = "notes:write"

SCOPE_DESCRIPTIONS: dict[str, str] = {
    TOOLS_READ: "See the server's tools and use the ones that only read",
    RESOURCES_READ: "Read the server's resources and subscribe to changes",
    PROMPTS_READ: "Use the server's prompt templates and completions",
    NOTES_READ: "Read your notes",
    NOTES_WRITE: "Add and delete your notes",
}

IMPLIES: dict[str, frozenset[str]] = {
    NOTES_WRITE: frozenset({NOTES_READ}),
}

SUPPORTED_SCOPES: tuple[str, ...] = tuple(SCOPE_DESCRIPTIONS)

# What a client is challenged for and granted when it asks for nothing in particular: everything
# that only reads. Writing is a step-up (RFC 6750 insufficient_scope, then a new authorization).
BASELINE_SCOPES: tuple[str, ...] = (TOOLS_READ, RESOURCES_READ, PROMPTS_READ, NOTES_READ)


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes granted plus every scope they imply (transitively)."""
    result = set(scopes)
    pending = list(result)
    while pending:
        for implied in IMPLIES.get(pending.pop(), ()):
            if implied not in result:
                result.add(implied)
                pending.append(implied)
    return frozenset(result)


def parse(scope: str | None) -> tuple[str, ...]:
    """Split an RFC 6749 scope string, dropping duplicates and keeping order."""
    return tuple(dict.fromkeys((scope or "").split()))
