"""Logging for every process: one line per record, JSON or text, a request id, secrets redacted.

`configure_logging(settings)` is called once by each entry point (`python -m mcp_server`,
`python -m auth_server`) before the app is built. It installs one handler on the root logger, so
every logger (ours, the MCP SDK's, uvicorn's access and error logs, which are started with
`log_config=None` so they propagate here) goes through the same two steps:

1. `RedactingFilter` rewrites the message (and any traceback) so that no credential survives:
   `Authorization` and API-key header values (`X-API-Key`, `x-scope3-api-key`...), `Bearer
   <token>`, and `access_token=`, `refresh_token=`, `code=`, `client_secret=`, `code_verifier=`,
   `password=`... in query strings, form bodies, JSON and Python reprs. Redaction is a safety
   net: the code logs no credential on purpose (the audit log has no parameter to pass one
   through). It also bounds what a record carries (`MAX_MESSAGE_CHARS` for the message,
   `MAX_TRACEBACK_LINE_CHARS` per traceback line): a request can put text into a line (an unknown
   tool's or method's name, a resource URI, an exception message quoting its input), and a 1 MB
   tool name used to write 2 MB of log per request.
2. `JsonFormatter` writes `{"ts", "level", "logger", "message", "request_id", ...}` on one line
   (`LOG_FORMAT=json`), or `TextFormatter` a human-readable line (`LOG_FORMAT=text`). The default,
   `LOG_FORMAT=auto`, picks text when standard error is a terminal (a person is reading) and JSON
   otherwise (systemd, containers, files: a log collector is reading).
   Audit lines (`auth_server.audit`, already JSON) are nested under `"audit"`, not re-escaped.
   The text format escapes control characters in the message, so a client's newline cannot start
   a forged line.

The request id comes from `RequestIdMiddleware`: the caller's `X-Request-Id` when it is a sane
token (1-128 characters of `[A-Za-z0-9._:-]`), otherwise a fresh one; it is echoed in the
response's `X-Request-Id` and attached to every line logged while the request runs (a
contextvar, so tasks started by the request inherit it), and passed on to the auth server with
each introspection call. Logs go to stderr: with
`--transport stdio`, stdout belongs to the protocol.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import Settings

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
AUDIT_LOGGER = "auth_server.audit"  # the audit log's logger (auth_server/audit.py writes it)
REDACTED = "[redacted]"
# What one record may carry. A message is cut to twice this before redaction (so the patterns do
# bounded work on any input) and to this after it (so no credential is cut in two and missed: a
# credential would need to be longer than this to straddle the first cut and survive the second).
MAX_MESSAGE_CHARS = 8192
MAX_TRACEBACK_LINE_CHARS = 1024

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# OpenTelemetry's W3C propagators warn about every malformed `traceparent`, `tracestate` or
# `baggage` they are handed, quoting it, and the MCP SDK hands them each request's `_meta`
# whether or not tracing is on: any client could write a line (of its own text) per request.
# A malformed context is simply ignored; only errors from these loggers are kept.
CLIENT_ECHOING_LOGGERS = (
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.trace.span",
    "opentelemetry.baggage.propagation",
)

# Parameter names whose values are credentials, wherever they appear as name=value or "name": value.
_SECRET_PARAMS = (
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "code",
    "code_verifier",
    "client_secret",
    "password",
    "client_assertion",
    "subject_token",
    "api_key",
)
_NAMES = "|".join(sorted(_SECRET_PARAMS, key=len, reverse=True))
# Any header named like an API key (X-API-Key, or an API_KEY_HEADER such as x-scope3-api-key).
_HEADERS = r"(?:proxy-)?authorization|[a-z0-9_-]*api[-_]?key"
_COOKIES = r"(?:set-)?cookie"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header lines: "Authorization: Bearer x", "x-api-key=x", "Cookie: a=b; c=d".
    (
        re.compile(rf"(?i)(\b(?:{_HEADERS})\s*[:=]\s*)(?:(?:bearer|basic|dpop|token)\s+)?[^\s\"',;)}}\]]+"),
        r"\1" + REDACTED,
    ),
    (re.compile(rf"(?i)(\b{_COOKIES}\s*[:=]\s*)[^\r\n\"']+"), r"\1" + REDACTED),
    # Dict and tuple reprs: 'authorization': 'Bearer x', (b'cookie', b'a=b').
    (re.compile(rf"""(?i)(b?["'](?:{_HEADERS}|{_COOKIES})["']\s*[:,]\s*b?["'])[^"']*"""), r"\1" + REDACTED),
    # A bare "Bearer <token>" anywhere (RFC 6750 b64token): long, or with a digit or punctuation,
    # so prose such as "a bearer credential" stays readable.
    (
        re.compile(
            r"(?i)\b(bearer\s+)(?:[A-Za-z0-9\-._~+/]{20,}|(?=[A-Za-z]*[0-9\-._~+/])[A-Za-z0-9\-._~+/]{4,})=*"
        ),
        r"\1" + REDACTED,
    ),
    # name=value in query strings and form bodies (not error_code=, code_challenge=...).
    (re.compile(rf"(?i)(?<![\w-])({_NAMES})=[^&\s\"',;)}}\]]+"), r"\1=" + REDACTED),
    # "name": "value" in JSON and 'name': 'value' in Python reprs.
    (re.compile(rf"""(?i)(["']({_NAMES})["']\s*:\s*b?["'])[^"']*"""), r"\1" + REDACTED),
)


# Every pattern above needs one of these words: a line without any (most access-log lines) is
# returned as it is, without running the substitutions.
_TRIGGERS = (
    "authoriz",
    "api-key",
    "cookie",
    "bearer",
    "token",
    "code",
    "secret",
    "password",
    "assertion",
    "api_key",
    "apikey",
)


def redact(text: str) -> str:
    """`text` with every credential the patterns recognise replaced by `[redacted]`."""
    lowered = text.lower()
    if not any(word in lowered for word in _TRIGGERS):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def bounded(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with a note of how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def _bounded_lines(text: str) -> str:
    return "\n".join(bounded(line, MAX_TRACEBACK_LINE_CHARS) for line in text.split("\n"))


# C0 and C1 control characters and the Unicode line separators, as escapes (text format only).
_CONTROL_ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def printable(text: str) -> str:
    """`text` on one line: control characters (newlines included) as escapes."""
    return text.translate(_CONTROL_ESCAPES)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback before any formatter sees it: credentials
    redacted, lengths bounded.

    Installed on the handler, not on loggers, so records from every logger pass through it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        if len(message) > MAX_MESSAGE_CHARS:
            message = bounded(redact(message[: 2 * MAX_MESSAGE_CHARS]), MAX_MESSAGE_CHARS)
        else:
            message = redact(message)
        record.msg = message
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(_bounded_lines(record.exc_text))
        if record.stack_info:
            record.stack_info = redact(_bounded_lines(record.stack_info))
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ms), level, logger, message, request_id, exc_info, and
    with tracing on the `trace_id` and `span_id` the line was logged in (shared/tracing.py)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == AUDIT_LOGGER and line["message"].startswith("{"):
            try:
                audit = json.loads(line["message"])
            except ValueError:
                audit = None
            if isinstance(audit, dict):
                line["message"] = str(audit.get("event", "audit"))
                line["audit"] = audit
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        trace_id = getattr(record, "trace_id", None)
        if trace_id is not None:
            line["trace_id"] = trace_id
            line["span_id"] = getattr(record, "span_id", None)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`2026-01-01T12:00:00.000Z INFO logger [request id] message` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        rid = f" [{request_id}]" if request_id else ""
        message = printable(record.getMessage())
        line = f"{_timestamp(record.created)} {record.levelname} {record.name}{rid} {message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def make_handler(log_format: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) with the redacting filter and the chosen formatter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Route every logger of this process through one redacting handler at LOG_LEVEL.

    Replaces whatever handlers the root logger had, and takes the handlers and levels off
    uvicorn's loggers (in case something configured them) so their records propagate here too.
    The OpenTelemetry propagators' loggers keep only errors (`CLIENT_ECHOING_LOGGERS`).
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    stream = stream if stream is not None else sys.stderr
    log_format = settings.log_format
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    root.addHandler(make_handler(log_format, stream))
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    for name in CLIENT_ECHOING_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.ERROR, root.level))


def request_id_header() -> dict[str, str]:
    """`{"X-Request-Id": <id>}` for a call the current request makes to another service (the
    auth server's introspection endpoint), so both processes log it under one id; `{}` outside
    a request."""
    request_id = request_id_var.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


def new_request_id() -> str:
    """128 random bits as 32 hex characters (a quarter of the cost of uuid4().hex)."""
    return os.urandom(16).hex()


class RequestIdMiddleware:
    """ASGI middleware: one id per HTTP request, in the logs and in the `X-Request-Id` response
    header. An incoming `X-Request-Id` (from a proxy or the client) is kept when it is sane, so
    one id follows a request across processes; anything else is replaced, so a header cannot
    inject text into log lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER_BYTES:
                raw = value
                break
        if raw is not None and _SANE_REQUEST_ID.fullmatch(raw):
            request_id = raw.decode("ascii")
        else:
            request_id = new_request_id()
        header = (_REQUEST_ID_HEADER_BYTES, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: the app's may be shared between responses (canned challenges).
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
