"""Argument completion (`completion/complete`) for prompt arguments and URI template variables."""

from __future__ import annotations

from typing import Final

from mcp.server.mcpserver import MCPServer
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    ResourceTemplateReference,
)

MAX_VALUES: Final = 100
"""The spec caps one completion response at 100 values."""

PROMPT_ARGUMENT_VALUES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("test_prompt_with_arguments", "arg1"): ("paris", "park", "party", "test", "testValue1", "tester"),
    ("test_prompt_with_arguments", "arg2"): ("world", "word", "work", "testValue2"),
}
TEMPLATE_VARIABLE_VALUES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("test://template/{id}/data", "id"): ("1", "12", "123", "42", "7"),
}


def suggestions(candidates: tuple[str, ...], prefix: str) -> Completion:
    """The candidates starting with `prefix` (case-insensitive), at most `MAX_VALUES` of them."""
    matches = [value for value in candidates if value.lower().startswith(prefix.lower())]
    return Completion(values=matches[:MAX_VALUES], total=len(matches), has_more=len(matches) > MAX_VALUES)


def register(server: MCPServer) -> None:
    # `MCPServer.completion` is the one unannotated decorator in the SDK (2.3); the handler is typed.
    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if isinstance(ref, PromptReference):
            candidates = PROMPT_ARGUMENT_VALUES.get((ref.name, argument.name))
        else:
            candidates = TEMPLATE_VARIABLE_VALUES.get((ref.uri, argument.name))
        return None if candidates is None else suggestions(candidates, argument.value)
