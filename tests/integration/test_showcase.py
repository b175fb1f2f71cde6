"""The protocol showcase (mcp_server/showcase/), driven by the SDK's own client over real transports.

One real uvicorn (the app `python -m mcp_server` serves, AUTH_MODE=none, SHOWCASE=true) listens on
a free 127.0.0.1 port for the whole module. Most tests run twice: once on a 2025-11-25 session
(initialize, `Mcp-Session-Id`, server-to-client requests over the session) and once on stateless
2026-07-28 (per-request `_meta`, `InputRequiredResult` rounds). The last test launches
`python -m mcp_server --transport stdio` the way a desktop client would. With SHOWCASE=false
only the app's own tools remain.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    EmbeddedResource,
    ImageContent,
    InputRequiredResult,
    ListRootsResult,
    LoggingMessageNotificationParams,
    PromptReference,
    Root,
    TextContent,
    TextResourceContents,
)

from mcp_server.app import create_app
from shared.settings import Settings
from tests.fixtures.launch import live_server

REPO_ROOT = Path(__file__).resolve().parents[2]

# Logging and resources/subscribe are deprecated in 2026-07-28 but still served to 2025-11-25
# sessions; these tests exercise them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

FIXTURE_TOOLS = {
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
    "test_reconnection",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_custom_headers",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
}
FIXTURE_PROMPTS = {
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
    "test_input_required_result_prompt",
}
SESSION = "legacy"  # 2025-11-25: initialize handshake and Mcp-Session-Id
STATELESS = "2026-07-28"
BOTH_REVISIONS = pytest.mark.parametrize("mode", [SESSION, STATELESS], ids=["2025-11-25", "2026-07-28"])


def serving(showcase: bool) -> Iterator[str]:
    # No .env, explicit values: nothing from the developer's shell reaches this server.
    settings = Settings(
        _env_file=None, auth_mode="none", host="127.0.0.1", mcp_port=0, redis_url=None, showcase=showcase
    )
    with live_server(lambda _: create_app(settings)) as base_url:
        yield f"{base_url}/mcp"


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    yield from serving(showcase=True)


@pytest.fixture(scope="module")
def app_only_url() -> Iterator[str]:
    yield from serving(showcase=False)


# --- client-side callbacks: what a user or the client's LLM would answer ----------------------------


async def answer_sampling(
    context: ClientRequestContext, params: CreateMessageRequestParams
) -> CreateMessageResult:
    asked = params.messages[0].content
    question = asked.text if isinstance(asked, TextContent) else "?"
    return CreateMessageResult(
        role="assistant", content=TextContent(type="text", text=f"echo({question})"), model="test-model"
    )


async def answer_elicitation(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    properties: dict[str, Any] = getattr(params, "requested_schema", {}).get("properties", {})
    canned = {
        "name": "Alice",
        "color": "blue",
        "ok": True,
        "context": "tests",
        "username": "alice",
        "email": "alice@example.com",
    }
    return ElicitResult(action="accept", content={key: canned[key] for key in properties if key in canned})


async def answer_roots(context: ClientRequestContext) -> ListRootsResult:
    return ListRootsResult(roots=[Root(uri="file:///workspace", name="Workspace")])


def interactive_client(url: str, mode: str, **kwargs: Any) -> Client:
    return Client(
        url,
        mode=mode,
        sampling_callback=answer_sampling,
        elicitation_callback=answer_elicitation,
        list_roots_callback=answer_roots,
        **kwargs,
    )


def only_text(blocks: list[Any]) -> str:
    assert len(blocks) == 1, blocks
    assert isinstance(blocks[0], TextContent), blocks
    text: str = blocks[0].text
    return text


# --- listing ---------------------------------------------------------------------------------------


@BOTH_REVISIONS
async def test_every_conformance_fixture_is_listed_with_a_description_and_all_four_hints(
    mcp_url: str, mode: str
) -> None:
    async with interactive_client(mcp_url, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

        assert set(tools) >= FIXTURE_TOOLS, FIXTURE_TOOLS - set(tools)
        for name in FIXTURE_TOOLS:
            tool = tools[name]
            assert tool.description, name
            assert "\n" not in tool.description, f"{name}: the description keeps the docstring's line breaks"
            hints = tool.annotations
            assert hints is not None, name
            assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint), name
            assert hints.open_world_hint is not None, name
        prompts = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
        assert set(prompts) >= FIXTURE_PROMPTS
        assert all(prompts[name].description for name in FIXTURE_PROMPTS)


@BOTH_REVISIONS
async def test_the_json_schema_tool_advertises_its_2020_12_schema_verbatim(mcp_url: str, mode: str) -> None:
    async with interactive_client(mcp_url, mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        schema = tools["json_schema_2020_12_tool"].input_schema

        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$defs"]["address"]["$anchor"] == "addressDef"
        assert schema["additionalProperties"] is False
        assert {"if", "then", "else", "allOf"} <= set(schema)


# --- tool results ----------------------------------------------------------------------------------


@BOTH_REVISIONS
async def test_content_tools_return_text_a_real_png_a_real_wav_and_an_embedded_resource(
    mcp_url: str, mode: str
) -> None:
    async with interactive_client(mcp_url, mode) as client:
        assert only_text((await client.call_tool("test_simple_text")).content).startswith(
            "This is a simple text"
        )

        image = (await client.call_tool("test_image_content")).content
        assert isinstance(image[0], ImageContent)
        assert image[0].mime_type == "image/png"
        assert base64.b64decode(image[0].data).startswith(b"\x89PNG\r\n\x1a\n")

        audio = (await client.call_tool("test_audio_content")).content
        assert isinstance(audio[0], AudioContent)
        assert audio[0].mime_type == "audio/wav"
        wav = base64.b64decode(audio[0].data)
        assert (wav[:4], wav[8:12]) == (b"RIFF", b"WAVE")

        mixed = (await client.call_tool("test_multiple_content_types")).content
        assert [block.type for block in mixed] == ["text", "image", "resource"]
        assert isinstance(mixed[2], EmbeddedResource)
        assert isinstance(mixed[2].resource, TextResourceContents)
        assert mixed[2].resource.mime_type == "application/json"


@BOTH_REVISIONS
async def test_the_error_tool_reports_a_tool_error_not_a_protocol_error(mcp_url: str, mode: str) -> None:
    async with interactive_client(mcp_url, mode) as client:
        result = await client.call_tool("test_error_handling")

        assert result.is_error is True
        assert "intentionally" in only_text(result.content)


@BOTH_REVISIONS
async def test_progress_arrives_as_three_non_decreasing_steps_of_100(mcp_url: str, mode: str) -> None:
    async with interactive_client(mcp_url, mode) as client:
        seen: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total))

        await client.call_tool("test_tool_with_progress", progress_callback=on_progress)

        assert seen == [(0, 100), (50, 100), (100, 100)]


@pytest.mark.parametrize(
    ("mode", "log_level"), [(SESSION, None), (STATELESS, "info")], ids=["2025-11-25", "2026-07-28"]
)
async def test_the_logging_tool_sends_three_info_messages(
    mcp_url: str, mode: str, log_level: str | None
) -> None:
    logged: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async with Client(mcp_url, mode=mode, logging_callback=on_log, log_level=log_level) as client:  # type: ignore[arg-type]
        await client.call_tool("test_tool_with_logging")

    assert [entry.data for entry in logged] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    assert {entry.level for entry in logged} == {"info"}


async def test_set_level_warning_silences_info_logs_on_a_2025_session(mcp_url: str) -> None:
    logged: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logged.append(params)

    async with Client(mcp_url, mode=SESSION, logging_callback=on_log) as client:
        await client.set_logging_level("warning")
        await client.call_tool("test_logging_tool")

    assert [entry.level for entry in logged] == ["warning"]


# --- tools that ask the client ---------------------------------------------------------------------


@BOTH_REVISIONS
async def test_sampling_returns_what_the_client_llm_answered(mcp_url: str, mode: str) -> None:
    async with interactive_client(mcp_url, mode) as client:
        result = await client.call_tool("test_sampling", {"prompt": "What is 2+2?"})

        assert only_text(result.content) == "LLM response: echo(What is 2+2?)"


@BOTH_REVISIONS
async def test_elicitation_returns_the_username_and_email_the_user_entered(mcp_url: str, mode: str) -> None:
    async with interactive_client(mcp_url, mode) as client:
        result = await client.call_tool("test_elicitation", {"message": "Who are you?"})

    assert only_text(result.content) == (
        "User response: action=accept, content={'username': 'alice', 'email': 'alice@example.com'}"
    )


@BOTH_REVISIONS
async def test_input_required_elicitation_greets_the_user_by_the_name_they_gave(
    mcp_url: str, mode: str
) -> None:
    async with interactive_client(mcp_url, mode) as client:
        result = await client.call_tool("test_input_required_result_elicitation")

        assert only_text(result.content) == "Hello, Alice!"


@BOTH_REVISIONS
async def test_multi_round_flow_carries_the_first_answer_into_the_second_round(
    mcp_url: str, mode: str
) -> None:
    async with interactive_client(mcp_url, mode) as client:
        result = await client.call_tool("test_input_required_result_multi_round")

        assert only_text(result.content) == "Alice's favorite color is blue."


@BOTH_REVISIONS
async def test_multiple_inputs_gathers_a_name_a_sampled_greeting_and_the_roots(
    mcp_url: str, mode: str
) -> None:
    async with interactive_client(mcp_url, mode) as client:
        text = only_text((await client.call_tool("test_input_required_result_multiple_inputs")).content)

        assert "Name: Alice" in text
        assert "echo(Generate a greeting)" in text
        assert "file:///workspace (Workspace)" in text


async def test_request_state_round_trips_on_2026(mcp_url: str) -> None:
    async with interactive_client(mcp_url, STATELESS) as client:
        result = await client.call_tool("test_input_required_result_request_state")

        assert "state-ok" in only_text(result.content)


async def test_a_tampered_request_state_is_rejected_with_invalid_params(mcp_url: str) -> None:
    async with interactive_client(mcp_url, STATELESS) as client:
        first = await client.session.call_tool(
            "test_input_required_result_tampered_state", allow_input_required=True
        )
        assert isinstance(first, InputRequiredResult)
        assert first.request_state

        with pytest.raises(MCPError) as rejected:
            await client.session.call_tool(
                "test_input_required_result_tampered_state",
                input_responses={"confirm": ElicitResult(action="accept", content={"ok": True})},
                request_state=first.request_state + "-TAMPERED",
                allow_input_required=True,
            )
        assert rejected.value.code == INVALID_PARAMS


@BOTH_REVISIONS
async def test_a_client_without_sampling_gets_missing_capability_instead_of_a_result(
    mcp_url: str, mode: str
) -> None:
    async with Client(mcp_url, mode=mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("test_missing_capability")

    assert refused.value.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.error.data == {"requiredCapabilities": {"sampling": {}}}


# --- SSE polling (2025-11-25 sessions, event store) ------------------------------------------------


async def test_the_result_still_arrives_after_the_server_closes_the_stream_mid_call(mcp_url: str) -> None:
    async with Client(mcp_url, mode=SESSION) as client:
        result = await client.call_tool("test_reconnection", read_timeout_seconds=10)

    assert only_text(result.content).startswith("Reconnection test completed")


# --- resources, prompts, completion ----------------------------------------------------------------


@BOTH_REVISIONS
async def test_the_template_resource_renders_the_id_and_unknown_uris_are_invalid_params(
    mcp_url: str, mode: str
) -> None:
    async with interactive_client(mcp_url, mode) as client:
        contents = (await client.read_resource("test://template/4711/data")).contents

        assert isinstance(contents[0], TextResourceContents)
        assert '"id": "4711"' in contents[0].text
        with pytest.raises(MCPError) as missing:
            await client.read_resource("test://no-such-resource")
        assert missing.value.code == INVALID_PARAMS


@BOTH_REVISIONS
async def test_prompt_arguments_are_substituted_and_can_be_completed(mcp_url: str, mode: str) -> None:
    async with interactive_client(mcp_url, mode) as client:
        prompt = await client.get_prompt("test_prompt_with_arguments", {"arg1": "hello", "arg2": "world"})
        completion = await client.complete(
            PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
            {"name": "arg1", "value": "par"},
        )

        assert isinstance(prompt.messages[0].content, TextContent)
        assert prompt.messages[0].content.text == "Prompt with arguments: arg1='hello', arg2='world'"
        assert completion.completion.values == ["paris", "park", "party"]


async def test_subscribing_to_the_watched_resource_is_acknowledged_on_a_2025_session(mcp_url: str) -> None:
    async with Client(mcp_url, mode=SESSION) as client:
        await client.subscribe_resource("test://watched-resource")
        await client.unsubscribe_resource("test://watched-resource")
        with pytest.raises(MCPError) as unknown:
            await client.subscribe_resource("test://no-such-resource")

    assert unknown.value.code == INVALID_PARAMS


# --- stdio -----------------------------------------------------------------------------------------


async def test_the_stdio_transport_serves_the_same_tools(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {"REDIS_URL", "HOST", "AUTH_MODE", "SHOWCASE"}
    }
    env.update(AUTH_MODE="none", SHOWCASE="true", PYTHONPATH=str(REPO_ROOT))
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "--transport", "stdio"], env=env, cwd=tmp_path
    )

    async with Client(server, mode=SESSION) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("test_simple_text")

    assert names >= FIXTURE_TOOLS
    assert only_text(result.content) == "This is a simple text response for testing."


# --- SHOWCASE=false: what a fork serves -------------------------------------------------------------

APP_TOOLS = {
    "whoami",
    "notes_list",
    "notes_add",
    "notes_delete",
    "count_slowly",
    "draft_report",
    "tasks_list",
}
SHOWCASE_TOOLS = FIXTURE_TOOLS | {"echo", "add"}


@BOTH_REVISIONS
async def test_without_the_showcase_only_the_apps_own_tools_are_served(app_only_url: str, mode: str) -> None:
    async with Client(app_only_url, mode=mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        prompts = (await client.list_prompts()).prompts
        resources = (await client.list_resources()).resources
        echo = await client.call_tool("echo", {"message": "x"})
        notes = await client.call_tool("notes_list", {})

    assert tools >= APP_TOOLS  # and a fork's own tools
    assert not tools & SHOWCASE_TOOLS
    assert prompts == []
    assert resources == []
    assert echo.is_error  # the showcase's tools are not there to call either
    assert notes.is_error is False


async def test_without_the_showcase_logging_is_not_offered_to_a_2025_session(app_only_url: str) -> None:
    async with Client(app_only_url, mode=SESSION) as client:
        capabilities = client.server_capabilities
        with pytest.raises(MCPError):
            await client.set_logging_level("warning")

    assert capabilities.logging is None
    assert capabilities.tools is not None
