"""RFC 9449 at the MCP endpoint: DPoP-bound tokens presented with proofs, in every token kind.

What a DPoP client sees: the challenges naming both schemes and the algorithms, the metadata,
tool calls on both protocol revisions with a fresh proof each, nonces when required, the MCP
profile's body digest, and a 403 step-up challenge in its own scheme. The attacks (every rule a
proof must pass) are in tests/security/test_dpop_attacks.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from shared.scopes import CATALOGUE
from tests.e2e.oauth_flow import mint
from tests.fixtures.dpop_client import DPoPKey, content_digest, dpop_headers
from tests.integration.rs.conftest import (
    ACCEPT,
    ALLOWED_ORIGIN,
    CALLBACK,
    LEGACY,
    MODERN,
    TOKEN_KINDS,
    USER_PASSWORD,
    Rs,
    StartRs,
    bearer,
    initialize_body,
    message,
    modern_request,
)
from tests.integration.rs.test_protected_resource_metadata import PATH_INSERTED

ALGORITHMS = "ES256 ES384 ES512 PS256 PS384 PS512 RS256 RS384 RS512 EdDSA Ed25519"


def challenges(response: httpx2.Response) -> dict[str, dict[str, str]]:
    """Each WWW-Authenticate challenge by scheme, with its auth-params."""
    found: dict[str, dict[str, str]] = {}
    for value in response.headers.get_list("www-authenticate"):
        scheme, _, rest = value.partition(" ")
        params: dict[str, str] = {}
        for part in rest.split('", '):
            name, _, raw = part.partition("=")
            if name.strip():
                params[name.strip()] = raw.strip().strip('"')
        found[scheme] = params
    return found


async def bound_token(
    rs: Rs, key: DPoPKey, subject: str = "alice", scopes: tuple[str, ...] = CATALOGUE.baseline
) -> str:
    """A token bound to `key`: in internal mode from the project's own authorization server
    through the whole interactive flow, its token request carrying a proof by `key`; otherwise
    minted by the stand-in AS with `cnf.jkt`."""
    if rs.token_kind == "internal":
        grant = await asyncio.to_thread(
            mint,
            rs.mcp_url,
            scope=" ".join(scopes),
            user=(subject, USER_PASSWORD),
            redirect_uri=CALLBACK,
            dpop=key,
        )
        return grant.tokens.access_token
    return await rs.token(subject, scopes, cnf={"jkt": key.jkt})


@dataclass
class DPoPMcp:
    """An MCP client that presents one DPoP-bound token with a fresh proof on every request."""

    rs: Rs
    key: DPoPKey
    token: str
    revision: str
    session: str | None = None
    nonce: str | None = None  # the server's, once it asked for one

    def headers(self, method: str = "POST", **proof: Any) -> dict[str, str]:
        proof.setdefault("nonce", self.nonce)
        return dpop_headers(self.key, self.token, method, self.rs.mcp_url, **proof)

    async def post(self, method: str, params: dict[str, Any] | None = None, **proof: Any) -> httpx2.Response:
        if self.revision == MODERN:
            body, headers = modern_request(method, params)
        else:
            await self._open_session()
            body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}}
            headers = {
                "accept": ACCEPT,
                "content-type": "application/json",
                "mcp-protocol-version": LEGACY,
                "mcp-session-id": self.session or "",
            }
        return await self.rs.http.post("/mcp", json=body, headers={**headers, **self.headers(**proof)})

    async def _open_session(self) -> None:
        if self.session is not None:
            return
        base = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": LEGACY}
        opened = await self.rs.http.post("/mcp", json=initialize_body(), headers={**base, **self.headers()})
        assert opened.status_code == 200, opened.text
        self.session = opened.headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        acked = await self.rs.http.post(
            "/mcp", json=note, headers={**base, "mcp-session-id": self.session, **self.headers()}
        )
        assert acked.status_code == 202, acked.text


@pytest.mark.parametrize("rs", TOKEN_KINDS, indirect=True)
@pytest.mark.parametrize("revision", [LEGACY, MODERN])
async def test_a_dpop_bound_token_with_a_fresh_proof_per_request_calls_tools(rs: Rs, revision: str) -> None:
    key = DPoPKey.generate()
    client = DPoPMcp(rs, key, await bound_token(rs, key, "alice"), revision)
    for text in ("one", "two"):
        response = await client.post("tools/call", {"name": "echo", "arguments": {"message": text}})
        assert response.status_code == 200, response.text
        assert text in json.dumps(message(response)["result"])
    whoami = await client.post("tools/call", {"name": "whoami", "arguments": {}})
    assert "alice" in json.dumps(message(whoami)["result"])


@pytest.mark.parametrize("rs", TOKEN_KINDS, indirect=True)
@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "Ed25519"])
async def test_every_advertised_algorithm_family_is_accepted(rs: Rs, alg: str) -> None:
    key = DPoPKey.generate(alg)
    client = DPoPMcp(rs, key, await bound_token(rs, key), MODERN)
    response = await client.post("tools/call", {"name": "echo", "arguments": {"message": alg}})
    assert response.status_code == 200, response.text


async def test_a_request_without_a_token_is_challenged_for_both_schemes_with_the_algorithms(rs: Rs) -> None:
    response = await rs.http.post("/mcp", json=initialize_body(), headers={"accept": ACCEPT})
    assert response.status_code == 401
    found = challenges(response)
    assert list(found) == ["Bearer", "DPoP"]
    assert found["DPoP"] == {"algs": ALGORITHMS}
    assert "error" not in found["Bearer"]
    assert response.headers["www-authenticate"].count("scope=") == 1


async def test_the_protected_resource_metadata_lists_the_algorithms_and_that_bearer_is_accepted(
    rs: Rs,
) -> None:
    document = (await rs.http.get(PATH_INSERTED)).json()
    assert document["dpop_signing_alg_values_supported"] == ALGORITHMS.split()
    assert document["dpop_bound_access_tokens_required"] is False


async def test_with_dpop_required_bearer_tokens_are_refused_and_only_dpop_is_challenged(
    start_rs: StartRs,
) -> None:
    rs = await start_rs("jwt", dpop_required=True, dpop_algorithms=["ES256", "EdDSA"], api_keys=[])
    document = (await rs.http.get(PATH_INSERTED)).json()
    assert document["dpop_bound_access_tokens_required"] is True
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]

    anonymous = await rs.http.post("/mcp", json=initialize_body(), headers={"accept": ACCEPT})
    found = challenges(anonymous)
    assert list(found) == ["DPoP"]
    assert found["DPoP"]["algs"] == "ES256 EdDSA"
    assert found["DPoP"]["resource_metadata"].endswith(PATH_INSERTED)
    assert "error" not in found["DPoP"]

    body, headers = modern_request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
    plain = await rs.http.post("/mcp", json=body, headers={**headers, **bearer(await rs.token("bob"))})
    assert plain.status_code == 401
    assert challenges(plain)["DPoP"]["error"] == "invalid_token"

    key = DPoPKey.generate("EdDSA")
    client = DPoPMcp(rs, key, await bound_token(rs, key, "bob"), MODERN)
    ok = await client.post("tools/call", {"name": "echo", "arguments": {"message": "x"}})
    assert ok.status_code == 200, ok.text
    es384 = DPoPKey.generate("ES384")  # valid, but not on this server's list
    refused = await DPoPMcp(rs, es384, await bound_token(rs, es384, "bob"), MODERN).post("tools/list")
    assert refused.status_code == 401
    assert challenges(refused)["DPoP"]["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("revision", [LEGACY, MODERN])
async def test_with_nonces_required_the_client_retries_with_the_nonce_it_was_given(
    start_rs: StartRs, revision: str
) -> None:
    rs = await start_rs("introspection", dpop_nonce="required")
    key = DPoPKey.generate()
    token = await bound_token(rs, key)
    body, headers = modern_request("tools/list")
    first = await rs.http.post(
        "/mcp", json=body, headers={**headers, **dpop_headers(key, token, "POST", rs.mcp_url)}
    )
    assert first.status_code == 401
    assert challenges(first)["DPoP"]["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    client = DPoPMcp(rs, key, token, revision, nonce=nonce)
    retried = await client.post("tools/list")
    assert retried.status_code == 200, retried.text
    forged = await client.post("tools/list", nonce=nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB"))
    assert forged.status_code == 401
    assert challenges(forged)["DPoP"]["error"] == "use_dpop_nonce"


@pytest.mark.parametrize("rs", TOKEN_KINDS, indirect=True)
async def test_a_proof_carrying_the_body_digest_of_the_mcp_profile_must_match_the_body(rs: Rs) -> None:
    key = DPoPKey.generate()
    token = await bound_token(rs, key)
    body, headers = modern_request("tools/call", {"name": "echo", "arguments": {"message": "digest"}})
    raw = json.dumps(body).encode()
    good = dpop_headers(key, token, "POST", rs.mcp_url, content_digest=content_digest(raw))
    response = await rs.http.post("/mcp", content=raw, headers={**headers, **good})
    assert response.status_code == 200, response.text

    other = json.dumps({**body, "params": {**body["params"], "arguments": {"message": "swapped"}}}).encode()
    swapped = dpop_headers(key, token, "POST", rs.mcp_url, content_digest=content_digest(raw))
    refused = await rs.http.post("/mcp", content=other, headers={**headers, **swapped})
    assert refused.status_code == 401
    assert challenges(refused)["DPoP"]["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("rs", TOKEN_KINDS, indirect=True)
async def test_a_missing_scope_is_challenged_in_the_dpop_scheme(rs: Rs) -> None:
    key = DPoPKey.generate()
    client = DPoPMcp(rs, key, await bound_token(rs, key, "carol", scopes=("mcp:tools:read",)), MODERN)
    response = await client.post("tools/call", {"name": "notes_add", "arguments": {"text": "x"}})
    assert response.status_code == 403, response.text
    found = challenges(response)
    assert list(found) == ["DPoP"]
    assert found["DPoP"]["error"] == "insufficient_scope"


async def test_a_browser_may_send_a_proof_and_read_the_nonce(rs: Rs) -> None:
    preflight = await rs.http.options(
        "/mcp",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, dpop, content-type",
        },
    )
    assert preflight.status_code == 204
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "dpop"} <= allowed
    challenge = await rs.http.post("/mcp", json=initialize_body(), headers={"origin": ALLOWED_ORIGIN})
    exposed = {h.strip().lower() for h in challenge.headers["access-control-expose-headers"].split(",")}
    assert {"www-authenticate", "dpop-nonce"} <= exposed
