"""The token exchange demo: a tool that calls a downstream API for the signed-in user.

`downstream_profile` reads the caller's profile from the demo API (`downstream/`, at
DOWNSTREAM_API_URL) with a token made for that API: `downstream_token` exchanges the caller's
token at the authorization server (RFC 8693) for one whose audience is the API, whose scope is
`profile:read` and nothing more, which names this server as the actor and lives a few minutes.
The caller's own token never leaves this server (the kit cannot even read it).

A fork's tool calling its own API looks the same: declare the scope the call needs, get a token
for the API's audience (listed in TOKEN_EXCHANGE_AUDIENCES), send it there, and turn the API's
refusals into tool errors. docs/agent-identity.md has the pattern, step by step.
"""

from __future__ import annotations

from typing import Any

import httpx2

from mcp_server.features.kit import READS_ELSEWHERE, ToolContext, ToolError, Tools, downstream_token
from shared import tracing, untrusted_json
from shared.scopes import PROFILE_READ

PROFILE_PATH = "/v1/profile"
TIMEOUT = 5.0
MAX_ANSWER_BYTES = 64 * 1024


def register(tools: Tools, api_url: str) -> None:
    """Register the tool, calling the API at `api_url` (DOWNSTREAM_API_URL, also its audience)."""

    @tools.add(scopes=[PROFILE_READ], annotations=READS_ELSEWHERE)
    async def downstream_profile(ctx: ToolContext) -> dict[str, Any]:
        """Read your profile at the profile service, which this server calls on your behalf
        with a short-lived token made for that service alone."""
        token = await downstream_token(ctx, audience=api_url, scope=PROFILE_READ)
        async with tracing.http_client(trusted_peer=True, timeout=TIMEOUT) as http:
            try:
                response = await http.get(
                    api_url + PROFILE_PATH, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx2.HTTPError:
                raise ToolError("The profile service cannot be reached; retry shortly") from None
        if response.status_code != 200:
            raise ToolError(f"The profile service refused the call (HTTP {response.status_code})")
        try:
            answer = untrusted_json.parse(response.content, max_bytes=MAX_ANSWER_BYTES)
        except untrusted_json.UntrustedJsonError:
            answer = None
        if not isinstance(answer, dict):
            raise ToolError("The profile service answered something that is not a profile")
        return answer
