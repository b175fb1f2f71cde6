"""Several validators behind one: the first that recognises a credential answers for it.

"Recognises" has one meaning across the project: a validator that does not understand a token
raises `TokenRejected("malformed")`; every other outcome (a Principal, any other rejection,
`ValidatorUnavailable`) is that validator's final word. So a JWT signed by a foreign key is
rejected by the JWT validator and never reaches introspection, while an opaque token passes
through the JWT validator untouched. Order therefore matters: cheap, exact validators (API keys,
JWT) go first, the catch-all (introspection or the in-process store) last.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.validation import Principal, TokenRejected, TokenValidator


class ChainValidator:
    """A TokenValidator that delegates to `validators` in order."""

    def __init__(self, validators: Sequence[TokenValidator]) -> None:
        if not validators:
            raise ValueError("ChainValidator needs at least one validator")
        self._validators = tuple(validators)

    @property
    def validators(self) -> tuple[TokenValidator, ...]:
        return self._validators

    async def validate(self, token: str) -> Principal:
        last: TokenRejected | None = None
        for validator in self._validators:
            try:
                return await validator.validate(token)
            except TokenRejected as rejected:
                if rejected.reason != "malformed":
                    raise
                last = rejected
        assert last is not None
        raise last

    async def aclose(self) -> None:
        """Close every member that holds resources (HTTP clients)."""
        for validator in self._validators:
            close = getattr(validator, "aclose", None)
            if close is not None:
                await close()
