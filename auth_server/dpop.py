"""DPoP at the authorization server (RFC 9449 sections 5, 8 and 10): which key a token request
binds its tokens to.

A token request may carry one `DPoP` header with a proof (checked by `shared.dpop`, the same code
the MCP server uses: method POST, the token endpoint's URL as this server publishes it, no
access token). Its key's thumbprint becomes the `KeyBinding` of the request, and then:
- the access token is bound to it: `cnf.jkt` in a JWT and in introspection answers, recorded with
  an opaque token, `token_type: DPoP` in the response (section 5);
- a public client's refresh token is bound to it too, and refreshing then needs a proof by the
  same key (section 5: a public client has no other credential to tie the refresh token to); a
  confidential client's refresh token stays bound to its client authentication, and each refresh
  binds the new access token to whichever key that request proves;
- a code whose authorization request named `dpop_jkt` (section 10) is redeemed only with a proof
  by that key (`grants/authorization_code.py`).
Without a proof the request is refused when DPOP_REQUIRED is set or the client registered
`dpop_bound_access_tokens: true` (section 5.2). Errors are 400 `invalid_dpop_proof`, and
`use_dpop_nonce` with a `DPoP-Nonce` header when DPOP_NONCE requires one (section 8); a proof
is used once (its `jti`, across instances on Redis).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import Headers

from auth_server.errors import OAuthError
from auth_server.models import Client
from auth_server.urls import endpoint_url
from shared.dpop import ProofRejected, ProofVerifier
from shared.settings import Settings
from shared.storage.base import Store

NONCE_HEADER = "DPoP-Nonce"
# RFC 7638 SHA-256 thumbprint, base64url without padding: what `dpop_jkt` and `cnf.jkt` hold.
JKT = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class KeyBinding:
    """The key one token request proved possession of."""

    jkt: str
    bind_refresh_token: bool  # a public client: its refresh token is bound to the key too
    renew_nonce: bool = False  # the proof used last window's nonce: answer with the current one


class TokenEndpointProofs:
    """The token endpoint's DPoP checks (module docstring)."""

    def __init__(self, verifier: ProofVerifier, *, token_endpoint_url: str, required: bool) -> None:
        self._verifier = verifier
        self._url = token_endpoint_url
        self._required = required

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> TokenEndpointProofs:
        return cls(
            ProofVerifier.from_settings(settings, store, purpose="token"),
            token_endpoint_url=endpoint_url(settings, "token"),
            required=settings.dpop_required,
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self._verifier.algorithms

    async def binding(self, headers: Headers, client: Client) -> KeyBinding | None:
        """The key this request binds its tokens to; None for a Bearer request (when allowed)."""
        proofs = headers.getlist("dpop")
        if not proofs:
            if self._required or client.dpop_bound_access_tokens:
                raise OAuthError("invalid_dpop_proof", "this client must send a DPoP proof (RFC 9449)")
            return None
        if len(proofs) > 1:
            raise OAuthError("invalid_dpop_proof", "send exactly one DPoP header")
        try:
            proof = await self._verifier.verify(proofs[0], method="POST", url=self._url)
            await self._verifier.consume(proof)
        except ProofRejected as rejected:
            nonce = await self._verifier.fresh_nonce() if rejected.error == "use_dpop_nonce" else None
            raise OAuthError(
                rejected.error, rejected.description, headers={NONCE_HEADER: nonce} if nonce else None
            ) from None
        return KeyBinding(proof.jkt, bind_refresh_token=client.is_public, renew_nonce=proof.renew_nonce)

    async def response_headers(self, binding: KeyBinding | None) -> dict[str, str]:
        """`DPoP-Nonce` with the current nonce when the request's proof used last window's."""
        if binding is None or not binding.renew_nonce:
            return {}
        nonce = await self._verifier.fresh_nonce()
        return {NONCE_HEADER: nonce} if nonce else {}


def check_bound_key(expected: str | None, binding: KeyBinding | None, what: str) -> None:
    """`invalid_grant` unless the request proved possession of the key `expected` names (when it
    names one): a code bound by `dpop_jkt`, a public client's refresh token."""
    if expected is not None and (binding is None or binding.jkt != expected):
        raise OAuthError("invalid_grant", f"{what} is bound to a DPoP key; send a proof by that key")
