"""Resources: a text and a binary resource, a URI template, and one to subscribe to.

`resources/subscribe` and `resources/unsubscribe` exist on 2025-11-25 and earlier only (2026-07-28
replaced them with `subscriptions/listen`, which the SDK serves); MCPServer has no decorator for
them, so they are registered on the low-level server. This server's resources never change, so a
subscription is acknowledged but never produces a `notifications/resources/updated`.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from mcp_server.sdk_access import lowlevel_server
from mcp_server.showcase.media import red_pixel_png

WATCHED_URI = "test://watched-resource"


def register(server: MCPServer) -> None:
    @server.resource(
        "test://static-text",
        name="static-text",
        description="A fixed plain-text document.",
        mime_type="text/plain",
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary",
        name="static-binary",
        description="A fixed binary file: a 1x1 red PNG.",
        mime_type="image/png",
    )
    def static_binary() -> bytes:
        return red_pixel_png()

    @server.resource(
        "test://template/{id}/data",
        name="template-data",
        description="A JSON record generated for any id.",
        mime_type="application/json",
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource(
        WATCHED_URI,
        name="watched-resource",
        description="A resource clients may subscribe to (resources/subscribe on 2025-11-25).",
        mime_type="text/plain",
    )
    def watched() -> str:
        return "This resource can be watched for updates."

    async def known(uri: str) -> None:
        if uri not in {str(resource.uri) for resource in await server.list_resources()}:
            raise MCPError(code=INVALID_PARAMS, message="Resource not found", data={"uri": uri})

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        await known(params.uri)
        return EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        await known(params.uri)
        return EmptyResult()

    lowlevel = lowlevel_server(server)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
