"""Reading back-channel requests (/token, /introspect, /revoke) and answering them.

OAuth 2.1 section 3.2.2: parameters arrive as `application/x-www-form-urlencoded` in a POST body;
unknown ones are ignored, a repeated one is an error, and an empty value counts as absent. Parsing
is done here, strictly and with a size cap, instead of through a generic multipart parser, so every
odd input becomes `invalid_request` and never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth_server.errors import NO_STORE, OAuthError
from shared.storage.base import StorageUnavailable

MAX_BODY_BYTES = 16 * 1024  # a token request is a few hundred bytes
MAX_FIELDS = 64
FORM_TYPE = "application/x-www-form-urlencoded"

logger = logging.getLogger(__name__)


def quoted(value: str, limit: int = 60) -> str:
    """Client input made safe to echo in `error_description`, which RFC 6749 section 5.2 limits
    to printable ASCII without `"` and `\\`; long values are cut."""
    kept = "".join(c for c in value[:limit] if " " <= c <= "~" and c not in '"\\')
    return f"'{kept}'" + ("..." if len(value) > limit else "")


class Form:
    """The request's parameters: each name at most once, empty values already dropped."""

    def __init__(self, params: dict[str, str]) -> None:
        self._params = params

    def get(self, name: str) -> str | None:
        return self._params.get(name)

    def require(self, name: str) -> str:
        value = self._params.get(name)
        if value is None:
            raise OAuthError("invalid_request", f"missing parameter: {name}")
        return value

    def __contains__(self, name: str) -> bool:
        return name in self._params


async def read_form(request: Request) -> Form:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise OAuthError("invalid_request", f"the request body must be {FORM_TYPE}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise OAuthError("invalid_request", "request body too large", status_code=413)
    try:
        text = bytes(body).decode("utf-8")
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
                headers={"Retry-After": "5"},
            ).response()

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
