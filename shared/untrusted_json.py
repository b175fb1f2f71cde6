"""The one parser for JSON that arrives from outside: bounded in size, depth and what it accepts.

Python's `json.loads` recurses once per nesting level, so `[[[[...]]]]` a few thousand levels
deep raises RecursionError, which no `except ValueError` catches: a registration body, a client
metadata document or a JWT header built that way used to end in a 500 (or a 503 with a
traceback). It also accepts what JSON (RFC 8259) does not: NaN and Infinity, and lone UTF-16
surrogates (`"\\ud800"`) that later fail to encode when the value is stored or shown.

`parse` uses pydantic-core's parser (jiter, in Rust): it never recurses in Python, stops at
NATIVE_DEPTH_LIMIT levels with a ValueError, and refuses NaN and lone surrogates. On top of it,
a size cap (checked before parsing) and a nesting limit for documents that are flat by nature.
Every failure is one exception, `UntrustedJsonError`, a ValueError, whose message is safe to
show to the sender.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json

# jiter's own limit: deeper input is refused inside the parser, before any Python object exists.
NATIVE_DEPTH_LIMIT = 200
# OAuth and JOSE documents (client metadata, registration bodies, JWT headers, JWKS, token and
# introspection responses) are a handful of levels deep; 16 leaves room for extensions.
DOCUMENT_DEPTH_LIMIT = 16

_INVALID = "the content is not valid JSON (RFC 8259)"
_TOO_DEEP = "the JSON is nested more than {} levels deep"


class UntrustedJsonError(ValueError):
    """The input is not acceptable JSON; the message says why and is safe to show the sender."""


def parse(data: bytes | bytearray | str, *, max_bytes: int, max_depth: int = DOCUMENT_DEPTH_LIMIT) -> Any:
    """The JSON value in `data`, or UntrustedJsonError.

    `max_bytes` caps the input before it is parsed (strings count their UTF-8 length);
    `max_depth` caps nesting (NATIVE_DEPTH_LIMIT or more: only the parser's own limit applies).
    """
    if isinstance(data, str):
        if len(data) > max_bytes:  # a cheap first look: UTF-8 is never shorter
            raise UntrustedJsonError(f"the JSON is larger than {max_bytes} bytes")
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in the text itself
            raise UntrustedJsonError(_INVALID) from None
    if len(data) > max_bytes:
        raise UntrustedJsonError(f"the JSON is larger than {max_bytes} bytes")
    try:
        value = from_json(bytes(data), allow_inf_nan=False)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise UntrustedJsonError(_TOO_DEEP.format(min(max_depth, NATIVE_DEPTH_LIMIT))) from None
        raise UntrustedJsonError(_INVALID) from None
    if max_depth < NATIVE_DEPTH_LIMIT and _depth_exceeds(value, max_depth):
        raise UntrustedJsonError(_TOO_DEEP.format(max_depth))
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` levels (iterative: no recursion to exhaust)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
