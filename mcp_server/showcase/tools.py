"""Tools that show each kind of tool result and in-flight notification.

The two tools people try first (`echo`, `add`); content blocks (text, image, audio, embedded
resource, a mix), an error result, log and progress notifications, a stream that closes mid-call
and resumes (SSE polling), a hand-written JSON Schema 2020-12 input schema and a parameter
mirrored into an HTTP header. The `test_*` names are the fixtures the official MCP conformance
suite calls.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp_types import (
    AudioContent,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field

from mcp_server.features.kit import READ_ONLY, Tools
from mcp_server.showcase.media import beep_wav, red_pixel_png
from mcp_server.showcase.session_logging import SessionLogLevels

STEP_DELAY = 0.05
"""Pause between the notifications of one call, so a client sees them arrive over time."""

JSON_SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema"
CONTACT_SCHEMA: dict[str, Any] = {
    "$schema": JSON_SCHEMA_2020_12,
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _png() -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(red_pixel_png()).decode(), mime_type="image/png")


class Address(BaseModel):
    street: str | None = None
    city: str | None = None


def save_contact(
    name: str | None = None,
    address: Address | None = None,
    contactMethod: Literal["phone", "email"] | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> CallToolResult:
    """Check a contact (name, address, how to reach them) against a JSON Schema 2020-12 input schema
    that uses $defs/$anchor, allOf/anyOf, if/then/else and additionalProperties: false, and echo it
    back."""
    # The SDK validates argument types against this signature; the schema's conditional rules (a
    # phone or an email; the one `contactMethod` names) are checked here.
    method = contactMethod or "email"  # the schema's `else`: without contactMethod "phone", email is required
    reach = phone if method == "phone" else email
    if not reach:
        return CallToolResult(
            content=[_text(f"Reaching a contact by {method} needs {method!r}")], is_error=True
        )
    where = f" at {address.street}, {address.city}" if address and (address.street or address.city) else ""
    return CallToolResult(
        content=[_text(f"Contact {name or '(unnamed)'}{where}: reach by {method} at {reach}")]
    )


def register(tools: Tools, log_levels: SessionLogLevels) -> None:
    # Coroutines on purpose: the SDK runs a plain `def` tool in a worker thread, a hand-off that
    # costs more than these tools do (docs/performance.md).
    @tools.add(annotations=READ_ONLY)
    async def echo(message: str) -> str:
        """Return the message unchanged."""
        return message

    @tools.add(annotations=READ_ONLY)
    async def add(a: float, b: float) -> float:
        """Add two numbers."""
        return a + b

    @tools.add(annotations=READ_ONLY)
    def test_simple_text() -> TextContent:
        """Return one text block."""
        return _text("This is a simple text response for testing.")

    @tools.add(annotations=READ_ONLY)
    def test_image_content() -> ImageContent:
        """Return one image block: a 1x1 red PNG."""
        return _png()

    @tools.add(annotations=READ_ONLY)
    def test_audio_content() -> AudioContent:
        """Return one audio block: a short WAV tone (audio/wav)."""
        return AudioContent(type="audio", data=base64.b64encode(beep_wav()).decode(), mime_type="audio/wav")

    @tools.add(annotations=READ_ONLY)
    def test_embedded_resource() -> EmbeddedResource:
        """Return one embedded text resource (test://embedded-resource)."""
        return EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://embedded-resource",
                mime_type="text/plain",
                text="This is an embedded resource content.",
            ),
        )

    @tools.add(annotations=READ_ONLY)
    def test_multiple_content_types() -> list[ContentBlock]:
        """Return three blocks of different types: text, a PNG image and an embedded JSON resource."""
        return [
            _text("Multiple content types test:"),
            _png(),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="test://mixed-content-resource",
                    mime_type="application/json",
                    text='{"test":"data","value":123}',
                ),
            ),
        ]

    @tools.add(annotations=READ_ONLY)
    def test_error_handling() -> CallToolResult:
        """Always fail the way a tool should: a result with isError true, not a protocol error."""
        return CallToolResult(
            content=[_text("This tool intentionally returns an error for testing")], is_error=True
        )

    @tools.add(annotations=READ_ONLY)
    async def test_tool_with_logging(ctx: Context[Any, Any]) -> TextContent:
        """Send three info log notifications while running, 50 ms apart."""
        for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            if message != "Tool execution started":
                await anyio.sleep(STEP_DELAY)
            await log_levels.log(ctx, "info", message)
        return _text("Tool with logging completed: sent 3 log notifications")

    @tools.add(annotations=READ_ONLY)
    async def test_logging_tool(ctx: Context[Any, Any]) -> TextContent:
        """Send one log notification at each of debug, info and warning. On 2026-07-28 they are
        delivered only if the request opted in with a log level in its _meta."""
        for level in ("debug", "info", "warning"):
            await log_levels.log(ctx, level, f"A {level} message from test_logging_tool")
        return _text("Logged at debug, info and warning")

    @tools.add(annotations=READ_ONLY)
    async def test_tool_with_progress(ctx: Context[Any, Any]) -> TextContent:
        """Report progress 0, 50 and 100 of 100, 50 ms apart (when the request has a progress token)."""
        for step, progress in enumerate((0, 50, 100)):
            if step:
                await anyio.sleep(STEP_DELAY)
            await ctx.report_progress(progress, 100, f"Step {step + 1} of 3")
        return _text("Tool with progress completed: reported 0, 50 and 100 of 100")

    @tools.add(annotations=READ_ONLY)
    async def test_reconnection(ctx: Context[Any, Any]) -> TextContent:
        """Close the response's SSE stream mid-call, then finish (SEP-1699 SSE polling): the client
        reconnects with Last-Event-ID and gets the result replayed from the server's event store.
        A no-op close where streams cannot be resumed (stdio, 2026-07-28)."""
        await ctx.close_sse_stream()
        await anyio.sleep(4 * STEP_DELAY)
        return _text("Reconnection test completed: the result arrived after the stream was closed")

    @tools.add(annotations=READ_ONLY)
    def test_custom_headers(
        region: Annotated[
            str, Field(description="Region to query", json_schema_extra={"x-mcp-header": "Region"})
        ],
        query: Annotated[str, Field(description="What to look up")] = "",
    ) -> TextContent:
        """Look up `query` in `region`. The region is mirrored into the Mcp-Param-Region HTTP header
        (2026-07-28), so proxies can route without reading the body; the server checks they match."""
        return _text(f"Region {region!r}, query {query!r}")

    tools.add(annotations=READ_ONLY, name="json_schema_2020_12_tool", input_schema=CONTACT_SCHEMA)(
        save_contact
    )
