"""Reading claims defensively, the same way whether they came from a JWT or an introspection answer.

And deciding, in one place, whether the audience they name is one this server accepts.

Claims are untrusted JSON: a wrong type means "absent", never an exception on the hot path.
"""

from __future__ import annotations

from typing import Any

from shared.scopes import parse
from shared.validation import TokenRejected

_JKT_LENGTH = 43  # base64url of a SHA-256 digest, unpadded


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


def names_accepted_audience(audience: tuple[str, ...], accepted: frozenset[str]) -> bool:
    """Whether a token whose `aud` is `audience` is meant for this server: it names at least one of
    the audiences the server accepts (its MCP URL, plus ACCEPTED_AUDIENCES). The one rule the JWT
    and introspection validators and the bearer middleware all apply."""
    return not accepted.isdisjoint(audience)


def confirmation_jkt(cnf: Any) -> str | None:
    """The DPoP key a token is bound to, from its `cnf` claim (RFC 7800; RFC 9449 section 6):
    None when there is no `cnf`. A `cnf` naming only another kind of proof (an mTLS certificate
    thumbprint, `x5t#S256`), or a malformed `jkt`, is refused: this server cannot check it, and
    accepting the token as a plain bearer token would undo the binding."""
    if cnf is None:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or len(jkt) != _JKT_LENGTH:
        raise TokenRejected("unsupported_binding", "token is bound to a proof this server cannot check")
    return jkt
