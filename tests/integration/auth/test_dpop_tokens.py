"""RFC 9449 at the authorization server: tokens bound to the key a token request proves.

The binding a client gets (`token_type: DPoP`, `cnf.jkt` in introspection answers and JWTs), who
must send proofs (DPOP_REQUIRED, `dpop_bound_access_tokens`), what is bound to the key besides the
access token (a public client's refresh token, a code whose request named `dpop_jkt`), and nonces.
In all four deployments. The attacks on the token endpoint's proof checks are in
tests/security/test_dpop_token_endpoint.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2

from auth_server.urls import endpoint_url
from shared.settings import Settings
from shared.storage.base import Store
from tests.fixtures.dpop_client import DPoPKey
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, HttpFactory
from tests.integration.auth.flow_helpers import (
    authorize_params,
    callback_dict,
    new_pkce,
    register,
    run_flow,
)
from tests.integration.auth.helpers import (
    REDIRECT_URI,
    RESOURCE,
    OAuthClient,
    add_client,
    code_form,
    configured_client,
    introspect,
    store_code,
)

# In every deployment: a proof names the token endpoint's URL (each mode's issuer), and its jti is
# remembered in the store.
DEPLOYMENTS = ALL_DEPLOYMENTS


def proof_for(settings: Settings, key: DPoPKey, **proof: Any) -> dict[str, str]:
    return {"DPoP": key.proof("POST", endpoint_url(settings, "token"), **proof)}


async def token_request(
    http: httpx2.AsyncClient, data: dict[str, str], headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx2.Response:
    return await http.post("/token", data=data, headers=headers or {}, **kwargs)


async def bound_tokens(
    http: httpx2.AsyncClient, store: Store, settings: Settings, client: OAuthClient, key: DPoPKey
) -> dict[str, Any]:
    code = await store_code(store, client, settings=settings)
    response = await token_request(http, code_form(code, client), proof_for(settings, key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refresh_form(refresh_token: str, client: OAuthClient) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **client.auth()}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


async def test_the_metadata_lists_the_dpop_algorithms(http: httpx2.AsyncClient) -> None:
    document = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert document["dpop_signing_alg_values_supported"][0] == "ES256"
    assert "none" not in document["dpop_signing_alg_values_supported"]
    assert not any(alg.startswith("HS") for alg in document["dpop_signing_alg_values_supported"])


async def test_a_code_redeemed_with_a_proof_gives_a_token_bound_to_that_key(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    key = DPoPKey.generate()
    body = await bound_tokens(http, store, settings, client, key)
    assert body["token_type"] == "DPoP"
    answer = (await introspect(http, body["access_token"])).json()
    assert answer["active"] is True
    assert answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": key.jkt}


async def test_without_a_proof_the_token_is_a_plain_bearer_token(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    body = (await token_request(http, code_form(code, client))).json()
    assert body["token_type"] == "Bearer"
    answer = (await introspect(http, body["access_token"])).json()
    assert answer["token_type"] == "Bearer"
    assert "cnf" not in answer


async def test_a_jwt_access_token_carries_the_key_thumbprint_in_cnf(
    make_http: HttpFactory, store: Store, configure: Any
) -> None:
    http = await make_http(token_format="jwt")
    settings = configure(token_format="jwt")
    client = await add_client(store)
    key = DPoPKey.generate("EdDSA")
    body = await bound_tokens(http, store, settings, client, key)
    assert jwt_claims(body["access_token"])["cnf"] == {"jkt": key.jkt}
    assert (await introspect(http, body["access_token"])).json()["cnf"] == {"jkt": key.jkt}


async def test_a_public_clients_refresh_token_needs_a_proof_by_the_same_key(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store)
    key = DPoPKey.generate()
    first = await bound_tokens(http, store, settings, client, key)
    form = refresh_form(first["refresh_token"], client)

    without = await token_request(http, form)
    assert without.status_code == 400
    assert without.json()["error"] == "invalid_grant"
    other = await token_request(http, form, proof_for(settings, DPoPKey.generate()))
    assert other.status_code == 400
    assert other.json()["error"] == "invalid_grant"

    # Neither refusal consumed the token: its owner refreshes with a proof by its key.
    refreshed = await token_request(http, form, proof_for(settings, key))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP"
    assert (await introspect(http, refreshed.json()["access_token"])).json()["cnf"] == {"jkt": key.jkt}
    # ... and the next refresh token is bound as well.
    again = await token_request(http, refresh_form(refreshed.json()["refresh_token"], client))
    assert again.json()["error"] == "invalid_grant"


async def test_a_confidential_clients_refresh_binds_each_access_token_to_the_key_it_proves(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    client = await add_client(store, confidential=True)
    key = DPoPKey.generate()
    first = await bound_tokens(http, store, settings, client, key)

    plain = await token_request(http, refresh_form(first["refresh_token"], client))
    assert plain.status_code == 200, plain.text  # bound to its client authentication, not the key
    assert plain.json()["token_type"] == "Bearer"

    rotated_key = DPoPKey.generate()
    rebound = await token_request(
        http, refresh_form(plain.json()["refresh_token"], client), proof_for(settings, rotated_key)
    )
    assert rebound.status_code == 200, rebound.text
    answer = (await introspect(http, rebound.json()["access_token"])).json()
    assert answer["cnf"] == {"jkt": rotated_key.jkt}


async def test_dpop_jkt_at_authorize_binds_the_code_to_that_key(
    http: httpx2.AsyncClient, settings: Settings
) -> None:
    client_id = (await register(http))["client_id"]
    key = DPoPKey.generate()

    async def code_request() -> dict[str, str]:
        """A fresh code (each attempt consumes one) and the token request redeeming it."""
        pkce = new_pkce()
        params = authorize_params(client_id, pkce, dpop_jkt=key.jkt, resource=RESOURCE)
        response = await run_flow(http, params)
        code = callback_dict(response.headers["location"])["code"]
        return {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": pkce.verifier,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
        }

    without = await token_request(http, await code_request())
    assert without.status_code == 400
    assert without.json()["error"] == "invalid_grant"
    another = await token_request(http, await code_request(), proof_for(settings, DPoPKey.generate()))
    assert another.json()["error"] == "invalid_grant"
    right = await token_request(http, await code_request(), proof_for(settings, key))
    assert right.status_code == 200, right.text
    assert right.json()["token_type"] == "DPoP"


async def test_a_malformed_dpop_jkt_is_an_invalid_request(http: httpx2.AsyncClient) -> None:
    client_id = (await register(http))["client_id"]
    response = await run_flow(http, authorize_params(client_id, new_pkce(), dpop_jkt="not a thumbprint"))
    assert callback_dict(response.headers["location"])["error"] == "invalid_request"


async def test_a_client_registered_with_dpop_bound_access_tokens_must_send_proofs(
    http: httpx2.AsyncClient, store: Store, settings: Settings
) -> None:
    registered = await register(http, dpop_bound_access_tokens=True)
    assert registered["dpop_bound_access_tokens"] is True
    client = OAuthClient(registered["client_id"])
    code = await store_code(store, client, settings=settings)
    refused = await token_request(http, code_form(code, client))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"
    body = await bound_tokens(http, store, settings, client, DPoPKey.generate())
    assert body["token_type"] == "DPoP"

    bad = await http.post(
        "/register", json={"redirect_uris": [REDIRECT_URI], "dpop_bound_access_tokens": "yes"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client_metadata"


async def test_with_dpop_required_every_token_request_needs_a_proof(
    make_http: HttpFactory, store: Store, configure: Any
) -> None:
    http = await make_http(dpop_required=True)
    settings = configure(dpop_required=True)
    client = await add_client(store)
    code = await store_code(store, client, settings=settings)
    refused = await token_request(http, code_form(code, client))
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert (await bound_tokens(http, store, settings, client, DPoPKey.generate()))["token_type"] == "DPoP"


async def test_with_nonces_required_the_token_endpoint_hands_out_one_and_accepts_it(
    make_http: HttpFactory, store: Store, configure: Any
) -> None:
    http = await make_http(dpop_nonce="required")
    settings = configure(dpop_nonce="required")
    client = await add_client(store)
    key = DPoPKey.generate()
    code = await store_code(store, client, settings=settings)
    # From a web page on another origin, as a browser-based client sends it: the preflight allows
    # the DPoP header, and the answer lets the page read DPoP-Nonce.
    preflight = await http.options(
        "/token",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "dpop, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert "dpop" in preflight.headers["access-control-allow-headers"].lower()
    browser = {**proof_for(settings, key), "Origin": "https://app.example"}
    first = await token_request(http, code_form(code, client), browser)
    assert first.status_code == 400
    assert first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    assert "dpop-nonce" in first.headers["access-control-expose-headers"].lower()
    # The code was not consumed by the nonce round trip: the client retries with the nonce.
    retried = await token_request(http, code_form(code, client), proof_for(settings, key, nonce=nonce))
    assert retried.status_code == 200, retried.text
    assert retried.json()["token_type"] == "DPoP"


async def test_a_machine_client_gets_a_dpop_bound_token_with_client_credentials(
    make_http: HttpFactory, configure: Any
) -> None:
    entry, client = configured_client(grant_types=["client_credentials"], scope="mcp:tools:read")
    http = await make_http(auth_clients=[entry])
    settings = configure(auth_clients=[entry])
    key = DPoPKey.generate("PS256")
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=client.basic(),
        headers=proof_for(settings, key),
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    assert (await introspect(http, response.json()["access_token"])).json()["cnf"] == {"jkt": key.jkt}
