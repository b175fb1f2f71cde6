"""The kit for writing tools (mcp_server/features/kit.py), on a real MCPServer, without HTTP."""

from __future__ import annotations

from typing import Annotated

import pytest
from mcp.server.mcpserver import MCPServer, Resolve, Sample
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, CreateMessageResult, SamplingMessage, TextContent

from mcp_server.features import feature_modules
from mcp_server.features.kit import (
    ANONYMOUS,
    DELETES,
    READ_ONLY,
    STORAGE_UNAVAILABLE,
    WRITES,
    ToolContext,
    Tools,
    caller_subject,
    storage_errors_as_tool_errors,
)
from shared.storage.base import StorageUnavailable


@pytest.fixture
def tools() -> Tools:
    return Tools(MCPServer("kit"))


async def test_the_docstring_becomes_a_one_line_description_and_the_preset_the_hints(tools: Tools) -> None:
    @tools.add(annotations=DELETES, title="Forget something")
    async def forget(what: str) -> str:
        """Forget what you name,
        and everything about it."""
        return what

    (listed,) = await tools.server.list_tools()

    assert listed.name == "forget"
    assert listed.description == "Forget what you name, and everything about it."
    assert listed.title == "Forget something"
    assert listed.annotations is not None
    assert listed.annotations.title == "Forget something"
    assert listed.annotations.destructive_hint is True
    assert listed.annotations.idempotent_hint is True
    assert DELETES.title is None  # the preset itself is left alone


def test_a_tool_without_a_docstring_is_refused(tools: Tools) -> None:
    with pytest.raises(ValueError, match="needs a docstring"):

        @tools.add(annotations=READ_ONLY)
        async def silent() -> None: ...


def test_a_scope_missing_from_the_catalogue_is_refused_before_the_tool_exists(tools: Tools) -> None:
    with pytest.raises(ValueError, match=r"unknown scope\(s\) \['files:admin'\].*APP_SCOPES"):
        tools.add(scopes=["notes:read", "files:admin"], annotations=READ_ONLY)
    with pytest.raises(TypeError, match=r"scopes=\['notes:read'\]"):
        tools.add(scopes="notes:read", annotations=READ_ONLY)


async def test_scopes_are_remembered_per_tool_and_leave_with_it(tools: Tools) -> None:
    @tools.add(scopes=["notes:write"], annotations=WRITES)
    async def scribble() -> str:
        """Scribble."""
        return "x"

    @tools.add(annotations=READ_ONLY)
    async def look() -> str:
        """Look."""
        return "x"

    assert tools.required_scopes("scribble") == {"notes:write"}
    assert tools.required_scopes("look") is None  # the policy's default, mcp:tools:read
    assert "scribble" in tools
    tools.remove("scribble")
    assert "scribble" not in tools
    assert tools.required_scopes("scribble") is None
    assert [tool.name for tool in await tools.server.list_tools()] == ["look"]


def test_a_second_tool_with_the_same_name_is_refused_rather_than_silently_ignored(tools: Tools) -> None:
    async def first() -> str:
        """First."""
        return "1"

    tools.add(scopes=["notes:read"], annotations=READ_ONLY, name="same")(first)
    with pytest.raises(ValueError, match="already registered"):
        tools.add(scopes=["notes:write"], annotations=WRITES, name="same")(first)
    assert tools.required_scopes("same") == {"notes:read"}


async def test_a_hand_written_input_schema_replaces_the_derived_one(tools: Tools) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False}

    @tools.add(annotations=READ_ONLY, input_schema=schema)
    async def search(q: str = "") -> str:
        """Search."""
        return q

    (listed,) = await tools.server.list_tools()
    assert listed.input_schema == schema


async def test_storage_errors_become_a_tool_error_that_invites_a_retry(tools: Tools) -> None:
    @tools.add(annotations=READ_ONLY)
    async def fetch() -> str:
        """Fetch."""
        with storage_errors_as_tool_errors():
            raise StorageUnavailable("redis: connection refused")

    # A deliberate ToolError (answered as an isError result), not an UnexpectedToolError (answered
    # "Error executing tool" and logged with its traceback as a crash).
    with pytest.raises(ToolError) as raised:
        await tools.server.call_tool("fetch", {})

    assert type(raised.value) is ToolError
    assert str(raised.value) == f"Error executing tool fetch: {STORAGE_UNAVAILABLE}"
    assert "redis" not in str(raised.value)  # nothing about the backend reaches the caller


async def test_without_authentication_the_caller_is_anonymous(tools: Tools) -> None:
    @tools.add(annotations=READ_ONLY)
    async def who(ctx: ToolContext) -> str:
        """Who."""
        return caller_subject(ctx)

    result = await tools.server.call_tool("who", {})

    assert isinstance(result, CallToolResult)
    assert result.structured_content == {"result": ANONYMOUS}


def test_the_apps_features_are_the_modules_beside_the_kit() -> None:
    assert feature_modules() == ["long_running", "notes", "whoami"]


def test_only_tools_that_cannot_send_anything_but_their_result_answer_only(tools: Tools) -> None:
    """What decides a one-JSON-body answer on 2025-11-25 (mcp_server/responses.py)."""

    @tools.add(annotations=READ_ONLY)
    async def plain(text: str) -> str:
        """No Context: no way to log, report progress or ask anything."""
        return text

    @tools.add(annotations=READ_ONLY)
    async def talks(ctx: ToolContext) -> str:
        """Takes a Context: it may stream."""
        return caller_subject(ctx)

    @tools.add(annotations=READ_ONLY, quiet=True)
    async def reads_the_caller(ctx: ToolContext) -> str:
        """Takes a Context only to read the caller, and says so."""
        return caller_subject(ctx)

    @tools.add(annotations=READ_ONLY, task="optional")
    async def slow() -> str:
        """A task tool reports to its task."""
        return "done"

    @tools.add(annotations=READ_ONLY)
    async def asks(prompt: str, reply: Annotated[CreateMessageResult, Resolve(sample_prompt)]) -> str:
        """No Context, but the SDK fills `reply` by asking the client (sampling)."""
        return prompt

    assert tools.answers_only("plain") is True
    assert tools.answers_only("asks") is False
    assert tools.answers_only("reads_the_caller") is True
    assert tools.answers_only("talks") is False
    assert tools.answers_only("slow") is False
    assert tools.answers_only("unknown") is False
    tools.remove("reads_the_caller")
    assert tools.answers_only("reads_the_caller") is False


def sample_prompt(prompt: str) -> Sample:
    return Sample(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=5
    )


def test_a_task_tool_cannot_be_declared_quiet(tools: Tools) -> None:
    with pytest.raises(ValueError, match="task tool"):
        tools.add(annotations=READ_ONLY, task="optional", quiet=True)
