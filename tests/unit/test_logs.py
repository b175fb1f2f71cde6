"""shared/logs.py: the redaction every log line goes through, the JSON lines, the request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shared.logs import (
    JsonFormatter,
    RequestIdMiddleware,
    TextFormatter,
    configure_logging,
    make_handler,
    redact,
    request_id_var,
)
from shared.settings import Settings

SECRET = "s3cr3t-VALUE_0123456789.abc~xyz+/="


@pytest.mark.parametrize(
    "line",
    [
        f"Authorization: Bearer {SECRET}",
        f"authorization: Basic {SECRET}",
        f"{{'authorization': 'Bearer {SECRET}', 'host': 'x'}}",
        f"[(b'authorization', b'Bearer {SECRET}'), (b'host', b'x')]",
        f"X-API-Key: {SECRET}",
        f"{{'x-api-key': '{SECRET}'}}",
        f"Cookie: __Host-session={SECRET}; theme=dark",
        f"sent the header bearer {SECRET} upstream",
        f'127.0.0.1:5000 - "GET /callback?code={SECRET}&state=xyz HTTP/1.1" 302',
        f"grant_type=refresh_token&refresh_token={SECRET}&client_id=app",
        f"grant_type=authorization_code&code={SECRET}&code_verifier={SECRET}",
        f"client_id=app&client_secret={SECRET}",
        f"/mcp?x=1&access_token={SECRET}",
        f"username=alice&password={SECRET}",
        f'{{"access_token": "{SECRET}", "token_type": "Bearer", "expires_in": 3600}}',
        f'{{"refresh_token":"{SECRET}"}}',
        f"{{'client_secret': '{SECRET}'}}",
        f"token={SECRET}",
    ],
)
def test_every_credential_form_is_redacted(line: str) -> None:
    redacted = redact(line)
    assert SECRET not in redacted, redacted
    assert "[redacted]" in redacted


@pytest.mark.parametrize(
    "line",
    [
        '127.0.0.1:5000 - "POST /mcp HTTP/1.1" 200',
        "code_challenge=abc&code_challenge_method=S256&state=xyz",
        "error_code=7 token_type_hint=access_token grant_type=refresh_token",
        "rejected a bearer credential: expired",
        "the authorization server is unreachable, retrying",
    ],
)
def test_lines_without_credentials_are_left_alone(line: str) -> None:
    assert redact(line) == line


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("tests.unit.test_logs")
    handler = make_handler("json", stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_carries_time_level_logger_message_and_the_request_id(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    token = request_id_var.set("req-42")
    try:
        logger.warning("hello %s", "world")
    finally:
        request_id_var.reset(token)
    logger.info("outside any request")
    first, second = lines(stream)
    assert first["level"] == "WARNING"
    assert first["logger"] == "tests.unit.test_logs"
    assert first["message"] == "hello world"
    assert first["request_id"] == "req-42"
    assert str(first["ts"]).endswith("Z")
    assert "T" in str(first["ts"])
    assert "request_id" not in second


def test_arguments_and_tracebacks_are_redacted_before_they_are_written(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.info("form was %s", {"refresh_token": SECRET})
    try:
        raise RuntimeError(f"upstream said Authorization: Bearer {SECRET}")
    except RuntimeError:
        logger.exception("call failed with code=%s", SECRET)
    assert SECRET not in stream.getvalue()
    failed = lines(stream)[1]
    assert "RuntimeError" in str(failed["exc_info"])
    assert "[redacted]" in str(failed["exc_info"])


def test_audit_lines_are_nested_as_objects_not_escaped_strings(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    _, stream = captured
    audit = logging.getLogger("auth_server.audit")
    handler = make_handler("json", stream)
    audit.addHandler(handler)
    try:
        audit.warning('{"event":"login_failed","subject":"alice"}')
    finally:
        audit.removeHandler(handler)
    (line,) = lines(stream)
    assert line["message"] == "login_failed"
    assert line["audit"] == {"event": "login_failed", "subject": "alice"}


def test_text_format_is_one_readable_line_with_the_request_id() -> None:
    record = logging.LogRecord("x.y", logging.INFO, __file__, 1, "ready", None, None)
    record.request_id = "abc"
    assert TextFormatter().format(record).endswith(" INFO x.y [abc] ready")
    assert json.loads(JsonFormatter().format(record))["message"] == "ready"


def test_configure_logging_sends_every_logger_through_one_redacting_handler() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn_loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved_uvicorn = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in uvicorn_loggers]
    stream = io.StringIO()
    try:
        configure_logging(Settings(log_level="DEBUG", log_format="json", _env_file=None), stream)  # type: ignore[call-arg]
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", f"/t?code={SECRET}", "1.1", 405
        )
        logging.getLogger("some.library").debug("Authorization: Bearer %s", SECRET)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for logger, handlers, level, propagate in saved_uvicorn:
            for handler in handlers:
                logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
    written = lines(stream)
    assert [line["logger"] for line in written] == ["uvicorn.access", "some.library"]
    assert SECRET not in stream.getvalue()


async def test_the_request_id_is_kept_when_sane_replaced_when_not_and_returned_in_the_response() -> None:
    seen: list[str | None] = []

    async def endpoint(_: Request) -> PlainTextResponse:
        seen.append(request_id_var.get())
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/", endpoint)]))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://t") as http:
        kept = await http.get("/", headers={"x-request-id": "trace-7f3a:01"})
        fresh = await http.get("/")
        replaced = await http.get("/", headers={"x-request-id": "evil\tline " + "x" * 200})
    assert kept.headers["x-request-id"] == "trace-7f3a:01" == seen[0]
    assert len(fresh.headers["x-request-id"]) == 32
    assert fresh.headers["x-request-id"] == seen[1]
    assert replaced.headers["x-request-id"] != "evil"
    assert "evil" not in str(seen[2])
    assert request_id_var.get() is None, "the id must not leak out of the request"
