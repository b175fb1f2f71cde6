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

from mcp_server.features.hints import CHANGES_SERVER, PURE, tool

EXTRA_TOOL: Final = "test_extra_tool"
EXTRA_PROMPT: Final = "test_extra_prompt"


def extra_tool() -> TextContent:
    """A tool that exists only while test_trigger_tool_change has switched it on."""
    return TextContent(type="text", text="The extra tool is here.")


def extra_prompt() -> list[UserMessage]:
    """A prompt that exists only while test_trigger_prompt_change has switched it on."""
    return [UserMessage("The extra prompt is here.")]


def register(server: MCPServer) -> None:
    @tool(server, CHANGES_SERVER)
    async def test_trigger_tool_change(ctx: Context[Any, Any]) -> TextContent:
        """Add the tool 'test_extra_tool' if absent, remove it if present, and notify tools/list
        listeners."""
        if any(tool.name == EXTRA_TOOL for tool in await server.list_tools()):
            server.remove_tool(EXTRA_TOOL)
            change = "removed"
        else:
            server.add_tool(extra_tool, name=EXTRA_TOOL, annotations=PURE)
            change = "added"
        await ctx.notify_tools_changed()
        return TextContent(type="text", text=f"Tool {EXTRA_TOOL!r} {change}; listeners notified.")

    @tool(server, CHANGES_SERVER)
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
