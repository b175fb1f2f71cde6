"""Reading form posts and answering the back channel's JSON.

OAuth 2.1 section 3.2.2: parameters arrive as `application/x-www-form-urlencoded` in a POST body;
unknown ones are ignored, a repeated one is an error, and an empty value counts as absent. Parsing
is done here, strictly and with a size cap, instead of through a generic multipart parser, so every
odd input becomes `invalid_request` (back channel) or a `BadForm` page (browser forms), never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_server.errors import NO_STORE, OAuthError, quoted
from auth_server.params import Form
from shared import retry_after
from shared.storage.base import StorageUnavailable

MAX_BODY_BYTES = 16 * 1024  # a token request is a few hundred bytes
MAX_FIELDS = 64
FORM_TYPE = "application/x-www-form-urlencoded"

logger = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """The request body goes on past the limit its endpoint sets."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, read no further than `limit` bytes: BodyTooLarge beyond it (Starlette's
    own limit answers a plain-text 413; each endpoint here answers in its own error shape)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


async def read_form(request: Request) -> Form:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise OAuthError("invalid_request", f"the request body must be {FORM_TYPE}")
    try:
        body = await read_body(request)
    except BodyTooLarge:
        raise OAuthError("invalid_request", "request body too large", status_code=413) from None
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the request body is not valid form encoding") from None
    params: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise OAuthError("invalid_request", f"parameter repeated: {quoted(name)}")
        seen.add(name)
        if value:
            params[name] = value
    return Form(params)


class BadForm(Exception):
    """The POST body of a page's form is not a small, well-formed urlencoded form."""


async def read_form_pairs(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as (name, value) pairs, repeats kept (callers decide what they mean)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise BadForm(f"the request body must be {FORM_TYPE}")
    try:
        return parse_form(await read_body(request))
    except BodyTooLarge:
        raise BadForm("the request body is too large") from None


def parse_form(encoded: bytes) -> list[tuple[str, str]]:
    """A urlencoded body or query string, held to the same limits (MAX_BODY_BYTES, MAX_FIELDS)."""
    if len(encoded) > MAX_BODY_BYTES:
        raise BadForm("the request is too large")
    try:
        return parse_qsl(encoded.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadForm("the request is not valid form encoding") from None


def single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Form fields as a dict; a repeated field is a malformed (or tampered) form."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise BadForm(f"the field {name} is repeated")
        values[name] = value
    return values


def json_response(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """Every back-channel answer carries tokens or token metadata: never cached (2.1 section 3.2.3)."""
    return JSONResponse(body, status_code=status_code, headers=NO_STORE)


Endpoint = Callable[[Request], Awaitable[Response]]


def oauth_endpoint(handler: Endpoint) -> Endpoint:
    """Turns OAuthError into its JSON error and a Store outage into 503 + Retry-After."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return exc.response()
        except StorageUnavailable:
            logger.warning("storage unavailable during %s", request.url.path)
            return OAuthError(
                "temporarily_unavailable",
                "storage unavailable, retry shortly",
                status_code=503,
                headers={"Retry-After": str(retry_after.UNAVAILABLE)},
            ).response()

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
