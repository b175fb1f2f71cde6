"""The character rule for `error_description` (RFC 6749 sections 4.1.2.1 and 5.2, RFC 7591 3.2.2).

Values must be printable ASCII without `"` and `\\` (%x20-21 / %x23-5B / %x5D-7E). Descriptions
here often quote what the client sent (a scope, a redirect URI), so they are made to fit rather
than trusted to: anything outside the set becomes `?`.
"""

from __future__ import annotations

import re

_OUTSIDE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
MAX_DESCRIPTION_LENGTH = 300


def error_description(text: str) -> str:
    return _OUTSIDE.sub("?", text)[:MAX_DESCRIPTION_LENGTH]
