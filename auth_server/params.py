"""The parameters of an OAuth request, as the services read them (grants, client authentication).

OAuth 2.1 section 3.2.2: each parameter at most once, and an empty value counts as absent. The
endpoints parse the request body into a `Form` (`endpoints/forms.py`); everything after that
reads parameters from it, never from the HTTP request.
"""

from __future__ import annotations

from auth_server.errors import OAuthError


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
