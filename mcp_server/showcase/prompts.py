"""Prompts: plain, with arguments, with an embedded resource, with an image, and one that first
asks the user for input (an `InputRequiredResult` on `prompts/get`, 2026-07-28)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp_types import (
    ElicitResult,
    EmbeddedResource,
    ImageContent,
    InputRequiredResult,
    TextResourceContents,
)
from pydantic import Field

from mcp_server.client_input import answer_as, elicit_form, gather
from mcp_server.showcase.media import red_pixel_png

CONTEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"context": {"type": "string", "description": "Context for the prompt"}},
    "required": ["context"],
}


def register(server: MCPServer) -> None:
    @server.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """A fixed one-message prompt without arguments."""
        return [UserMessage("This is a simple prompt for testing.")]

    @server.prompt()
    def test_prompt_with_arguments(
        arg1: Annotated[str, Field(description="First test argument")],
        arg2: Annotated[str, Field(description="Second test argument")],
    ) -> list[UserMessage]:
        """A prompt that substitutes its two arguments (both can be completed)."""
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @server.prompt()
    def test_prompt_with_embedded_resource(
        resourceUri: Annotated[str, Field(description="URI of the resource to embed")],
    ) -> list[UserMessage]:
        """A prompt that embeds a text resource under the given URI, then asks to process it."""
        resource = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(EmbeddedResource(type="resource", resource=resource)),
            UserMessage("Please process the embedded resource above."),
        ]

    @server.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt with a PNG image, then a request to analyse it."""
        image = ImageContent(
            type="image", data=base64.b64encode(red_pixel_png()).decode(), mime_type="image/png"
        )
        return [UserMessage(image), UserMessage("Please analyze the image above.")]

    @server.prompt()
    async def test_input_required_result_prompt(
        ctx: Context[Any, Any],
    ) -> list[UserMessage] | InputRequiredResult:
        """A prompt that first asks the user what context to use (input key `user_context`)."""
        question = elicit_form("What context should the prompt use?", CONTEXT_SCHEMA)
        answers = await gather(ctx, {"user_context": question})
        if isinstance(answers, InputRequiredResult):
            return answers
        answer = answer_as(answers, "user_context", ElicitResult)
        context = (answer.content or {}).get("context") if answer.action == "accept" else None
        if not context:
            return [UserMessage(f"Answer without extra context (the user chose {answer.action}).")]
        return [UserMessage(f"Use this context when answering: {context}")]
