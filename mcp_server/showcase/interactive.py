"""Tools that need input from the client: elicitation (ask the user), sampling (ask the client's
LLM) and roots (ask for the client's workspace roots).

Each works on both protocol revisions: on 2026-07-28 through `InputRequiredResult` rounds, on
2025-11-25 through the session back-channel. `test_sampling` and `test_elicitation` use the SDK's
declarative `Resolve(...)` dependencies; the rest use `client_input.gather()`, the hand-written
form, where the conformance suite fixes the input keys or the flow needs `requestState`.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    Resolve,
    Sample,
)
from mcp_types import (
    CreateMessageResult,
    ElicitResult,
    InputRequest,
    InputRequiredResult,
    ListRootsResult,
    SamplingMessage,
    TextContent,
)
from pydantic import BaseModel, Field

from mcp_server.client_input import (
    answer_as,
    client_can,
    decode_state,
    elicit_form,
    encode_state,
    gather,
    input_required,
    list_roots,
    sample_text,
    sampled_text,
    uses_input_required,
)
from mcp_server.features.kit import ASKS_CLIENT, Tools

NAME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string", "description": "Your name"}},
    "required": ["name"],
}
CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean", "description": "Whether to go ahead"}},
    "required": ["ok"],
}
COLOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"color": {"type": "string", "description": "A colour"}},
    "required": ["color"],
}

SEP1034_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "default": "John Doe"},
        "age": {"type": "integer", "title": "Age", "default": 30},
        "score": {"type": "number", "title": "Score", "default": 95.5},
        "status": {
            "type": "string",
            "title": "Status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "title": "Verified", "default": True},
    },
}

SEP1330_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
    "required": ["untitledSingle", "titledSingle", "legacyEnum", "untitledMulti", "titledMulti"],
}


class UserInfo(BaseModel):
    """What `test_elicitation` asks the user for."""

    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _elicitation_outcome(result: ElicitResult) -> str:
    return f"Elicitation completed: action={result.action}, content={result.content or {}}"


def _describe_roots(result: ListRootsResult) -> str:
    roots = ", ".join(f"{root.uri}" + (f" ({root.name})" if root.name else "") for root in result.roots)
    return f"The client shares {len(result.roots)} root(s)" + (f": {roots}" if roots else "")


# --- resolvers for the declarative (Resolve) tools ---------------------------------------------------


def ask_llm(prompt: str) -> Sample:
    """Sample the client's LLM with the tool's `prompt` argument."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return Sample([message], max_tokens=100)


def ask_user(message: str) -> Elicit[UserInfo]:
    """Ask the user for a username and email, showing the tool's `message` argument."""
    return Elicit(message, UserInfo)


def register(tools: Tools) -> None:
    @tools.add(annotations=ASKS_CLIENT)
    async def test_sampling(
        prompt: str, reply: Annotated[CreateMessageResult, Resolve(ask_llm)]
    ) -> TextContent:
        """Ask the client's LLM to answer `prompt` (sampling/createMessage) and return its answer."""
        return _text(f"LLM response: {sampled_text(reply)}")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_elicitation(
        message: str, answer: Annotated[ElicitationResult[UserInfo], Resolve(ask_user)]
    ) -> TextContent:
        """Ask the user for a username and email (elicitation/create), showing `message`."""
        if isinstance(answer, AcceptedElicitation):
            return _text(f"User response: action=accept, content={answer.data.model_dump()}")
        return _text(f"User response: action={answer.action}")

    async def elicit_once(
        ctx: Context[Any, Any], message: str, schema: dict[str, Any]
    ) -> TextContent | InputRequiredResult:
        answers = await gather(ctx, {"form": elicit_form(message, schema)})
        if isinstance(answers, InputRequiredResult):
            return answers
        return _text(_elicitation_outcome(answer_as(answers, "form", ElicitResult)))

    @tools.add(annotations=ASKS_CLIENT)
    async def test_elicitation_sep1034_defaults(ctx: Context[Any, Any]) -> TextContent | InputRequiredResult:
        """Ask the user for a profile whose every field (string, integer, number, enum, boolean)
        has a default value (SEP-1034)."""
        return await elicit_once(ctx, "Please review your profile (defaults are pre-filled)", SEP1034_SCHEMA)

    @tools.add(annotations=ASKS_CLIENT)
    async def test_elicitation_sep1330_enums(ctx: Context[Any, Any]) -> TextContent | InputRequiredResult:
        """Ask the user to pick from all five enum forms: untitled and titled single-select,
        legacy enumNames, untitled and titled multi-select (SEP-1330)."""
        return await elicit_once(ctx, "Please choose your options", SEP1330_SCHEMA)

    # --- SEP-2322 multi-round-trip fixtures (keys fixed by the conformance suite) -------------------

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_elicitation(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask the user for their name (input key `user_name`) and greet them."""
        answers = await gather(ctx, {"user_name": elicit_form("What is your name?", NAME_SCHEMA)})
        if isinstance(answers, InputRequiredResult):
            return answers
        answer = answer_as(answers, "user_name", ElicitResult)
        if answer.action != "accept" or not answer.content:
            return _text(f"No name given (action={answer.action}).")
        return _text(f"Hello, {answer.content.get('name')}!")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_sampling(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask the client's LLM for the capital of France (input key `capital_question`)."""
        question = sample_text("What is the capital of France?", max_tokens=100)
        answers = await gather(ctx, {"capital_question": question})
        if isinstance(answers, InputRequiredResult):
            return answers
        return _text(
            f"The model answered: {sampled_text(answer_as(answers, 'capital_question', CreateMessageResult))}"
        )

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_list_roots(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask the client for its roots (input key `client_roots`) and list them."""
        answers = await gather(ctx, {"client_roots": list_roots()})
        if isinstance(answers, InputRequiredResult):
            return answers
        return _text(_describe_roots(answer_as(answers, "client_roots", ListRootsResult)))

    async def confirm_with_state(ctx: Context[Any, Any], flow: str) -> TextContent | InputRequiredResult:
        """Ask for a confirmation, carrying `requestState` that must come back intact.

        The SDK seals the state (authenticated encryption, bound to this tool call) and rejects a
        retry whose state was altered with -32602 before this function runs; a retry that drops
        the state is asked again.
        """
        requests: dict[str, InputRequest] = {"confirm": elicit_form("Please confirm", CONFIRM_SCHEMA)}
        if uses_input_required(ctx) and decode_state(ctx).get("flow") != flow:
            return input_required(ctx, requests, request_state=encode_state({"flow": flow}))
        answers = await gather(ctx, requests)
        if isinstance(answers, InputRequiredResult):  # the retry carried our state but no answer
            return input_required(ctx, requests, request_state=encode_state({"flow": flow}))
        answer = answer_as(answers, "confirm", ElicitResult)
        ok = answer.action == "accept" and bool((answer.content or {}).get("ok"))
        if uses_input_required(ctx):
            return _text(f"Confirmed: {ok} (state-ok: the echoed requestState verified)")
        return _text(f"Confirmed: {ok} (asked over the session; no requestState on this revision)")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_request_state(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask for a confirmation and check that the echoed requestState round-trips ("state-ok")."""
        return await confirm_with_state(ctx, "request-state")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_tampered_state(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask for a confirmation with integrity-protected requestState; an altered state is
        rejected with a JSON-RPC error."""
        return await confirm_with_state(ctx, "tamper-check")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_multiple_inputs(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask for three inputs at once: the user's name, a greeting from the LLM and the roots."""
        requests: dict[str, InputRequest] = {
            "user_name": elicit_form("What is your name?", NAME_SCHEMA),
            "greeting": sample_text("Generate a greeting", max_tokens=50),
            "client_roots": list_roots(),
        }
        answers = await gather(ctx, requests, request_state=encode_state({"flow": "multiple-inputs"}))
        if isinstance(answers, InputRequiredResult):
            return answers
        name = answer_as(answers, "user_name", ElicitResult).content or {}
        greeting = sampled_text(answer_as(answers, "greeting", CreateMessageResult))
        roots = _describe_roots(answer_as(answers, "client_roots", ListRootsResult))
        return _text(f"Name: {name.get('name')}; greeting: {greeting}; {roots}")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_multi_round(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask two questions one after the other (name, then favourite colour): two input rounds,
        the requestState carrying the first answer into the second."""
        state = decode_state(ctx)
        name = state.get("name")
        if not isinstance(name, str):
            step1 = {"step1": elicit_form("Step 1: What is your name?", NAME_SCHEMA)}
            answers = await gather(ctx, step1, request_state=encode_state({"asked": "step1"}))
            if isinstance(answers, InputRequiredResult):
                return answers
            name = str((answer_as(answers, "step1", ElicitResult).content or {}).get("name", ""))
        step2 = {"step2": elicit_form("Step 2: What is your favorite color?", COLOR_SCHEMA)}
        answers = await gather(ctx, step2, request_state=encode_state({"name": name}))
        if isinstance(answers, InputRequiredResult):
            return answers
        color = (answer_as(answers, "step2", ElicitResult).content or {}).get("color")
        return _text(f"{name}'s favorite color is {color}.")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_input_required_result_capabilities(
        ctx: Context[Any, Any],
    ) -> TextContent | InputRequiredResult:
        """Ask only for what the client declared it supports: a colour (elicitation), a haiku
        (sampling) and its roots, each only if the matching capability was declared."""
        candidates: dict[str, InputRequest] = {
            "favorite_color": elicit_form("What is your favorite color?", COLOR_SCHEMA),
            "haiku": sample_text("Write a haiku about protocols", max_tokens=60),
            "client_roots": list_roots(),
        }
        requests = {key: request for key, request in candidates.items() if client_can(ctx, request)}
        if not requests:
            return _text("The client declared none of elicitation, sampling or roots; nothing was asked.")
        answers = await gather(ctx, requests)
        if isinstance(answers, InputRequiredResult):
            return answers
        return _text("Answered: " + ", ".join(sorted(answers)))

    # --- SEP-2575 diagnostics -------------------------------------------------------------------

    @tools.add(annotations=ASKS_CLIENT)
    async def test_missing_capability(ctx: Context[Any, Any]) -> TextContent | InputRequiredResult:
        """Ask the client's LLM a one-word question. Needs the sampling capability: a client that
        did not declare it gets error -32021 (MissingRequiredClientCapability) instead."""
        answers = await gather(ctx, {"ping": sample_text("Reply with one word: pong", max_tokens=5)})
        if isinstance(answers, InputRequiredResult):
            return answers
        return _text(f"The model said: {sampled_text(answer_as(answers, 'ping', CreateMessageResult))}")

    @tools.add(annotations=ASKS_CLIENT)
    async def test_streaming_elicitation(ctx: Context[Any, Any]) -> TextContent | InputRequiredResult:
        """Ask the user to confirm. On 2026-07-28 the question travels inside the InputRequiredResult
        on the response stream, never as a separate server-to-client request."""
        answers = await gather(ctx, {"confirm": elicit_form("Continue?", CONFIRM_SCHEMA)})
        if isinstance(answers, InputRequiredResult):
            return answers
        return _text(_elicitation_outcome(answer_as(answers, "confirm", ElicitResult)))
