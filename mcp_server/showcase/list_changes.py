"""Tools that change what the server offers, so clients can watch list-changed notifications.

Each call adds an extra tool (or prompt) if it is absent and removes it if present, then
publishes the change to `subscriptions/listen` streams (2026-07-28; the SDK delivers it to the
streams whose filter asked for that kind of change). Sessions of earlier revisions are not told:
this server does not advertise `listChanged` to them.
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp_types import TextContent

from mcp_server.features.kit import READ_ONLY, WRITES, Tools

EXTRA_TOOL: Final = "test_extra_tool"
EXTRA_PROMPT: Final = "test_extra_prompt"


def extra_tool() -> TextContent:
    """A tool that exists only while test_trigger_tool_change has switched it on."""
    return TextContent(type="text", text="The extra tool is here.")


def extra_prompt() -> list[UserMessage]:
    """A prompt that exists only while test_trigger_prompt_change has switched it on."""
    return [UserMessage("The extra prompt is here.")]


def register(server: MCPServer, tools: Tools) -> None:
    @tools.add(annotations=WRITES)
    async def test_trigger_tool_change(ctx: Context[Any, Any]) -> TextContent:
        """Add the tool 'test_extra_tool' if absent, remove it if present, and notify tools/list
        listeners."""
        if EXTRA_TOOL in tools:  # checked and changed without an await between: no race
            tools.remove(EXTRA_TOOL)
            change = "removed"
        else:
            tools.add(name=EXTRA_TOOL, annotations=READ_ONLY)(extra_tool)
            change = "added"
        await ctx.notify_tools_changed()
        return TextContent(type="text", text=f"Tool {EXTRA_TOOL!r} {change}; listeners notified.")

    @tools.add(annotations=WRITES)
    async def test_trigger_prompt_change(ctx: Context[Any, Any]) -> TextContent:
        """Add the prompt 'test_extra_prompt' if absent, remove it if present, and notify
        prompts/list listeners."""
        if any(prompt.name == EXTRA_PROMPT for prompt in await server.list_prompts()):
            server.remove_prompt(EXTRA_PROMPT)
            change = "removed"
        else:
            server.prompt(name=EXTRA_PROMPT)(extra_prompt)
            change = "added"
        await ctx.notify_prompts_changed()
        return TextContent(type="text", text=f"Prompt {EXTRA_PROMPT!r} {change}; listeners notified.")
