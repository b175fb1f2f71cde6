"""Reading claims defensively, the same way whether they came from a JWT or an introspection answer.

Claims are untrusted JSON: a wrong type means "absent", never an exception on the hot path.
"""

from __future__ import annotations

from typing import Any

from shared.scopes import parse


def audience_of(value: Any) -> tuple[str, ...]:
    """`aud`: one string or a list of strings (RFC 7519 4.1.3)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def numeric_date(value: Any) -> float | None:
    """A NumericDate (`exp`, `nbf`, `iat`); booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def scope_values(value: Any) -> tuple[str, ...]:
    """Scopes from a claim: an RFC 6749 space-separated string, or a list of strings (`scp`)."""
    if isinstance(value, str):
        return parse(value)
    if isinstance(value, list):
        return tuple(dict.fromkeys(item for item in value if isinstance(item, str)))
    return ()
