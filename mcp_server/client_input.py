"""Ask the client for input (elicitation, sampling, roots) the way the request's revision allows.

- 2026-07-28 is stateless: a handler cannot call back mid-request. It returns an
  `InputRequiredResult` naming what it needs; the client answers and retries the same request
  with `inputResponses` (and the echoed, SDK-sealed `requestState`), so the handler runs once
  per round and finds the answers on `ctx.input_responses`.
- 2025-11-25 and earlier have a session: the server sends each request over the session's
  back-channel and awaits the answer within one handler run.

`gather()` hides the difference. Handlers write one flow for both revisions:

    answers = await gather(ctx, {"user_name": elicit_form("What is your name?", schema)})
    if isinstance(answers, InputRequiredResult):
        return answers  # 2026-07-28, first round: the client answers and retries
    name = answers["user_name"]  # an ElicitResult, whichever revision

Inside a task (a tool registered with task support, called by a client of the tasks extension,
`mcp_server/tasks/`) the call has no request to return an `InputRequiredResult` on: `gather()`
parks the task as `input_required` instead, and returns once the client has answered every
request through `tasks/update`, on any instance. The handler code is the same.

For resolver-style dependencies the SDK's `Resolve(...)` does the same declaratively; this is the
hand-written form for flows that need chosen input keys, `requestState` or several rounds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    ClientCapabilities,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitationCapability,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    FormElicitationCapability,
    InputRequest,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    MissingRequiredClientCapabilityErrorData,
    RootsCapability,
    SamplingCapability,
    SamplingMessage,
    TextContent,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from mcp_server.tasks.runner import current_task

Answer = ElicitResult | CreateMessageResult | ListRootsResult
AnswerT = TypeVar("AnswerT", ElicitResult, CreateMessageResult, ListRootsResult)


# --- building requests ----------------------------------------------------------------------------


def elicit_form(message: str, requested_schema: dict[str, Any]) -> ElicitRequest:
    """A form-mode `elicitation/create` request."""
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=requested_schema))


def sample_text(prompt: str, *, max_tokens: int) -> CreateMessageRequest:
    """A `sampling/createMessage` request with one user text message."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def list_roots() -> ListRootsRequest:
    """A `roots/list` request."""
    return ListRootsRequest()


# --- reading answers --------------------------------------------------------------------------------


def answer_as(answers: Mapping[str, Answer], key: str, kind: type[AnswerT]) -> AnswerT:
    """The answer for `key`, checked to be of the kind that was asked for.

    Raises:
        MCPError: INVALID_PARAMS when the client answered with a different kind of result.
    """
    answer = answers[key]
    if isinstance(answer, kind):
        return answer
    raise MCPError(code=INVALID_PARAMS, message=f"inputResponses[{key!r}] is not a {kind.__name__}")


def sampled_text(result: CreateMessageResult) -> str:
    """The text of a sampling answer (empty when the model answered with non-text content)."""
    return result.content.text if isinstance(result.content, TextContent) else ""


def encode_state(state: Mapping[str, Any]) -> str:
    """Serialize handler state for `requestState` (the SDK seals and verifies it; it stays opaque)."""
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def decode_state(ctx: Context[Any, Any]) -> dict[str, Any]:
    """The handler state echoed back on this round; empty on the first round or a 2025 session."""
    if not ctx.request_state:
        return {}
    try:
        state = json.loads(ctx.request_state)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


# --- the round trip ---------------------------------------------------------------------------------


def uses_input_required(ctx: Context[Any, Any]) -> bool:
    """True when this request asks through `InputRequiredResult` (2026-07-28), not the session."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def client_can(ctx: Context[Any, Any], request: InputRequest) -> bool:
    """Whether the client declared the capability `request` needs (form elicitation, sampling, roots)."""
    capabilities = ctx.client_capabilities
    if capabilities is None:
        return False
    if isinstance(request, ElicitRequest):
        elicitation = capabilities.elicitation
        # A bare `elicitation: {}` predates modes and means form support; url-only does not.
        return elicitation is not None and (elicitation.form is not None or elicitation.url is None)
    if isinstance(request, CreateMessageRequest):
        return capabilities.sampling is not None
    return capabilities.roots is not None


def _required_capability(request: InputRequest) -> ClientCapabilities:
    if isinstance(request, ElicitRequest):
        return ClientCapabilities(elicitation=ElicitationCapability(form=FormElicitationCapability()))
    if isinstance(request, CreateMessageRequest):
        return ClientCapabilities(sampling=SamplingCapability())
    return ClientCapabilities(roots=RootsCapability())


ANSWER_TYPES: dict[str, type[Answer]] = {
    "elicitation/create": ElicitResult,
    "sampling/createMessage": CreateMessageResult,
    "roots/list": ListRootsResult,
}
"""The result type that answers each kind of input request, by the request's method."""


def _result_type(request: InputRequest) -> type[Answer]:
    return ANSWER_TYPES[request.method]


def require_capabilities(ctx: Context[Any, Any], requests: Mapping[str, InputRequest]) -> None:
    """Refuse, before asking anything, when the client did not declare what a request needs.

    Raises:
        MCPError: MISSING_REQUIRED_CLIENT_CAPABILITY (-32021) with `requiredCapabilities` naming
            the missing capability, as the spec requires (HTTP 400 on the 2026 wire).
    """
    for key, request in requests.items():
        if not client_can(ctx, request):
            data = MissingRequiredClientCapabilityErrorData(
                required_capabilities=_required_capability(request)
            )
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message=f"Input {key!r} needs a client capability it did not declare ({request.method})",
                data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
            )


def _parse_answer(key: str, request: InputRequest, raw: BaseModel | dict[str, Any]) -> Answer:
    """Re-read an inbound answer as the result type of the request it answers.

    `inputResponses` values arrive as an undiscriminated union (or, from a task's store, as
    JSON); validating the wire form against the expected type tells an `ElicitResult` from a
    sampling result reliably.
    """
    wire = raw if isinstance(raw, dict) else raw.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:
        return _result_type(request).model_validate(wire)
    except ValidationError:
        raise MCPError(
            code=INVALID_PARAMS, message=f"inputResponses[{key!r}] does not answer a {request.method} request"
        ) from None


def input_required(
    ctx: Context[Any, Any], requests: Mapping[str, InputRequest], *, request_state: str | None = None
) -> InputRequiredResult:
    """The `InputRequiredResult` asking for `requests` (2026-07-28), ignoring any answers on this request.

    Raises:
        MCPError: -32021 when the client lacks a capability one of the requests needs.
    """
    require_capabilities(ctx, requests)
    return InputRequiredResult(input_requests=dict(requests), request_state=request_state)


async def gather(
    ctx: Context[Any, Any],
    requests: Mapping[str, InputRequest],
    *,
    request_state: str | None = None,
) -> dict[str, Answer] | InputRequiredResult:
    """Get an answer for every request, or the `InputRequiredResult` that asks for them.

    2026-07-28: answers already on `ctx.input_responses` are used; if any key is missing, all
    requests are asked again (with `request_state`, when given, echoed back on the retry), and
    answers to keys not asked about are ignored. In a task, the task waits as `input_required`
    for the answers instead (the call becomes a task first if it was not one yet); a key may be
    asked only once per task. 2025-11-25: each request is sent over the session's back-channel
    in order.

    Raises:
        MCPError: -32021 when the client lacks a needed capability; -32602 when an answer is of
            the wrong kind; or whatever error the client answered a back-channel request with.
    """
    require_capabilities(ctx, requests)
    if uses_input_required(ctx):
        responses = ctx.input_responses or {}
        if all(key in responses for key in requests):
            return {key: _parse_answer(key, request, responses[key]) for key, request in requests.items()}
        task = current_task()
        if task is not None:
            wire = {
                key: request.model_dump(by_alias=True, mode="json", exclude_none=True)
                for key, request in requests.items()
            }
            given = await task.ask(wire)
            return {key: _parse_answer(key, request, given[key]) for key, request in requests.items()}
        return input_required(ctx, requests, request_state=request_state)

    answers: dict[str, Answer] = {}
    for key, request in requests.items():
        answers[key] = await ctx.session.send_request(
            request,
            _result_type(request),
            metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
        )
    return answers
