"""DPoP-bound tokens at the MCP endpoint (RFC 9449 section 7; the MCP DPoP profile, SEP-1932).

A client presents a DPoP-bound token as `Authorization: DPoP <token>` with a `DPoP` header
holding a fresh proof (`shared.dpop`). `BearerAuth` reads the credential and asks this module
two things around its one validator call:
1. before it, `verify`: the proof itself, checked against this request: its method, and its URL
   as this server is published (MCP_PUBLIC_URL, else http://HOST:MCP_PORT, plus the path), never
   the Host header a proxy or client chose; the `ath` of the token; the nonce when DPOP_NONCE
   requires one. Nothing is stored, and the token is not looked up, for a proof that fails.
2. after it, `confirm`: the token is bound (`cnf.jkt`) to the proof's key; the proof was not used
   before (`consume`, across instances on Redis); when the proof carries the profile's
   `content_digest`, it is the digest of this request's body.

What the client sees, all 401 unless said otherwise:
- a proof that fails a check, or a second `DPoP` header: `WWW-Authenticate: DPoP
  error="invalid_dpop_proof"`; no current nonce: `error="use_dpop_nonce"` and a `DPoP-Nonce`
  header with one (a proof with last window's nonce passes, and the answer carries the new one);
- an unbound token with the DPoP scheme, or a token bound to another key: `invalid_token` /
  `invalid_dpop_proof` in a DPoP challenge;
- a DPoP-bound token sent as Bearer (section 7.2), or any Bearer token under DPOP_REQUIRED:
  `invalid_token`, with the DPoP challenge naming the algorithms.
Every challenge of a DPoP request carries `algs`, `resource_metadata` and `scope`; Bearer
challenges are followed by `WWW-Authenticate: DPoP algs="..."` (section 7.2), and under
DPOP_REQUIRED the DPoP challenge is the only one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from starlette.types import Message, Receive, Scope, Send

from mcp_server.protection._asgi import BufferedBody, CannedResponse, Headers
from shared import metrics
from shared.dpop import ProofRejected, ProofVerifier, VerifiedProof
from shared.validation import Principal

DPOP_HEADER = b"dpop"
NONCE_HEADER = b"dpop-nonce"
MAX_BODY_BYTES = 4 * 1024 * 1024  # the SDK's own limit for Streamable HTTP bodies
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ProofOfPossession:
    """The DPoP half of the MCP endpoint's authentication (module docstring)."""

    def __init__(
        self,
        verifier: ProofVerifier,
        *,
        public_base_url: str,
        resource_metadata_url: str,
        challenge_scopes: Iterable[str],
        required: bool = False,
    ) -> None:
        self._verifier = verifier
        self._base = public_base_url.rstrip("/")
        self.required = required
        self.algs_param = f"algs={quote(' '.join(verifier.algorithms))}"
        self._tail = (
            self.algs_param,
            f"resource_metadata={quote(resource_metadata_url)}",
            f"scope={quote(' '.join(challenge_scopes))}",
        )

    def challenge(self, *params: str) -> tuple[str, str]:
        """A complete DPoP challenge: `params` (error, error_description), algorithms, metadata, scope."""
        return ("WWW-Authenticate", "DPoP " + ", ".join((*params, *self._tail)))

    def offer(self) -> tuple[str, str]:
        """The DPoP challenge that follows a Bearer one (RFC 9449 section 7.2)."""
        return ("WWW-Authenticate", "DPoP " + self.algs_param)

    def refusal(
        self,
        error: str,
        description: str,
        extra: Iterable[tuple[str, str]] = (),
        *,
        reason: str | None = None,
    ) -> CannedResponse:
        """A 401 in a DPoP challenge, counted under `reason` (default: the error)."""
        metrics.auth_failure(reason or error)
        return CannedResponse(
            401,
            {"error": error, "error_description": description},
            [self.challenge(f"error={quote(error)}", f"error_description={quote(description)}"), *extra],
        )

    async def verify(self, scope: Scope, token: str, proofs: list[bytes]) -> VerifiedProof | CannedResponse:
        if len(proofs) != 1:
            return self.refusal(
                "invalid_dpop_proof", "Send exactly one DPoP header with a DPoP-bound access token"
            )
        try:
            return await self._verifier.verify(
                proofs[0].decode("latin-1"), method=scope["method"], url=self._url(scope), access_token=token
            )
        except ProofRejected as rejected:
            extra: list[tuple[str, str]] = []
            if rejected.error == "use_dpop_nonce":
                nonce = await self._verifier.fresh_nonce()
                extra = [("DPoP-Nonce", nonce)] if nonce else []
            return self.refusal(rejected.error, rejected.description, extra)

    async def confirm(
        self, proof: VerifiedProof, principal: Principal, receive: Receive
    ) -> Receive | CannedResponse:
        """The token is bound to the proof's key, the proof is used once, and the body is the one
        it was made for: the `receive` to pass on (a checked body is replayed), or the refusal."""
        if principal.cnf_jkt is None:
            return self.refusal(
                "invalid_token", "The access token is not DPoP-bound; send it as Bearer", reason="not_bound"
            )
        if not hmac.compare_digest(principal.cnf_jkt, proof.jkt):
            return self.refusal(
                "invalid_dpop_proof", "The DPoP proof is signed by another key than the token's"
            )
        try:
            await self._verifier.consume(proof)
        except ProofRejected as rejected:
            return self.refusal(rejected.error, rejected.description)
        if proof.content_digest is None:
            return receive
        buffered = BufferedBody(receive)
        body = await buffered.read(MAX_BODY_BYTES)
        if body is None or not _digest_matches(proof.content_digest, body):
            return self.refusal(
                "invalid_dpop_proof",
                "The DPoP proof's content_digest is not the digest of this request's body",
            )
        return buffered.receive

    async def renewing_nonce(self, proof: VerifiedProof, send: Send) -> Send:
        """`send`, adding the current nonce to the response when the proof used last window's."""
        if not proof.renew_nonce:
            return send
        nonce = (await self._verifier.fresh_nonce() or "").encode()

        async def send_with_nonce(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: Headers = [*message.get("headers", []), (NONCE_HEADER, nonce)]
                message = {**message, "headers": headers}
            await send(message)

        return send_with_nonce

    def _url(self, scope: Scope) -> str:
        """The URL this request was for, as the server is published (never from the Host header)."""
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return self._base + path


def _digest_matches(content_digest: str, body: bytes) -> bool:
    """RFC 9530 `Content-Digest` syntax (`sha-256=:base64:`, comma-separated): every sha-256 or
    sha-512 member matches the body, and there is at least one."""
    checked = False
    for member in content_digest.split(","):
        name, _, value = member.strip().partition("=")
        digest = _DIGESTS.get(name.strip().lower())
        if digest is None:
            continue
        value = value.strip()
        if len(value) < 2 or value[0] != ":" or value[-1] != ":":
            return False
        expected = base64.b64encode(digest(body).digest()).decode()
        if not hmac.compare_digest(value[1:-1].encode(), expected.encode()):
            return False
        checked = True
    return checked
