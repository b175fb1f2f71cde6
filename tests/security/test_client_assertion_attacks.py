"""Attacks on `private_key_jwt` client authentication (RFC 7523 section 2.2), over HTTP against
the real authorization server in four deployments (internal/external x memory/Redis).

Each test forges or replays one thing a thief, a confused client or a malicious metadata
document host would, and asserts the token endpoint refuses it (401 `invalid_client`, or 400 for
a malformed request) without a token and without a 500: a replayed assertion (also at a second
server over the same Store), another audience, a list of audiences, iss/sub naming another
client, expired or far-future assertions, `iat` in the future, no `jti`, `alg: none`, HS256
keyed with the public key, another key under the client's `kid`, tokens of other kinds (access
token, ID-JAG, DPoP proof types), secret and assertion mixed, a secret client pretending to hold
a key, oversized and malformed assertions. Then what an anonymous caller can make us fetch:
made-up `kid`s cost at most one jwks_uri fetch per REFETCH_INTERVAL, a jwks_uri on a non-public
address is never fetched, a key rotation is picked up, and metadata that publishes a private
key, or registration asking for private_key_jwt or jwt-bearer, is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from auth_server.clients.keys import REFETCH_INTERVAL
from auth_server.clients.registry import preregistered_clients
from shared.settings import Settings
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, Configure, HttpFactory
from tests.integration.auth.flow_helpers import register
from tests.integration.auth.helpers import oauth_refused
from tests.security.document_host import DocumentHost

# In every deployment: an assertion's audience is each mode's issuer, and its jti is remembered in the store
# across instances.
DEPLOYMENTS = ALL_DEPLOYMENTS

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
SCOPE = "mcp:tools:read"


def public_set(*keys: RSAKey | ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def key_client(client_id: str | None = None, **metadata: Any) -> dict[str, Any]:
    """An AUTH_CLIENTS entry for a machine client authenticating with private_key_jwt."""
    return {
        "client_id": client_id or f"keyed-{uuid.uuid4().hex[:10]}",
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "scope": SCOPE,
        **({"jwks": public_set(RSA_KEY)} if "jwks_uri" not in metadata else {}),
        **metadata,
    }


def claims(client_id: str, audience: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def signed(body: dict[str, Any], key: RSAKey | ECKey = RSA_KEY, **header: Any) -> str:
    alg = "RS256" if isinstance(key, RSAKey) else "ES256"
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, body, key)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], body: dict[str, Any], hmac_key: bytes | None) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
    if hmac_key is None:
        return signing_input + "."
    return signing_input + "." + b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())


async def token_request(http: httpx2.AsyncClient, assertion: str, **extra: Any) -> httpx2.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return await http.post("/token", data=form)


def refused(response: httpx2.Response, status: int = 401, error: str = "invalid_client") -> str:
    return oauth_refused(response, error, status)


@pytest.fixture
def issuer(configure: Configure) -> str:
    return configure().issuer


async def test_a_valid_assertion_works_once_and_its_replay_is_refused_on_every_server(
    make_http: HttpFactory, issuer: str
) -> None:
    entry = key_client()
    first = await make_http(auth_clients=[entry])
    second = await make_http(auth_clients=[entry])  # another instance over the same Store
    assertion = signed(claims(entry["client_id"], issuer))
    response = await token_request(first, assertion)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == SCOPE
    assert "jti" in refused(await token_request(first, assertion))
    assert "jti" in refused(await token_request(second, assertion))


async def test_the_token_endpoint_url_is_accepted_as_the_audience(
    make_http: HttpFactory, issuer: str
) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    response = await token_request(http, signed(claims(entry["client_id"], f"{issuer}/token")))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "audience",
    [
        "https://other-as.example",
        "http://127.0.0.1:3232/mcp",
        ["{issuer}", "https://other-as.example"],
        [],
        None,
    ],
    ids=["another-issuer", "the-mcp-resource", "a-list-with-ours", "empty-list", "none"],
)
async def test_an_assertion_for_another_audience_is_refused(
    make_http: HttpFactory, issuer: str, audience: Any
) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    if isinstance(audience, list):
        audience = [value.format(issuer=issuer) for value in audience]
    assert "aud" in refused(await token_request(http, signed(claims(entry["client_id"], audience))))


async def test_an_assertion_naming_another_client_is_refused(make_http: HttpFactory, issuer: str) -> None:
    victim, attacker = key_client(), key_client()
    http = await make_http(auth_clients=[victim, attacker])
    # Signed with the (shared) key, but iss names the attacker and sub the victim, and vice versa.
    for iss, sub in (
        (attacker["client_id"], victim["client_id"]),
        (victim["client_id"], attacker["client_id"]),
    ):
        body = claims(victim["client_id"], issuer, iss=iss, sub=sub)
        refused(await token_request(http, signed(body), client_id=victim["client_id"]))
    # The form's client_id names the victim; the assertion is the attacker's own.
    own = signed(claims(attacker["client_id"], issuer))
    refused(await token_request(http, own, client_id=victim["client_id"]))


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"exp": -3600}, "expired"),
        ({"exp": 24 * 3600}, "too long"),
        ({"exp": None}, "expired"),
        ({"iat": 3600}, "iat"),
        ({"nbf": 3600}, "nbf"),
        ({"jti": None}, "jti"),
        ({"jti": "x" * 1000}, "jti"),
    ],
    ids=["expired", "far-future", "no-exp", "iat-in-future", "nbf-in-future", "no-jti", "huge-jti"],
)
async def test_an_assertion_outside_its_time_window_or_without_a_jti_is_refused(
    make_http: HttpFactory, issuer: str, overrides: dict[str, Any], rule: str
) -> None:
    """Times are seconds from now, made when the test runs (a long suite outlives collection)."""
    now = int(time.time())
    timed = ("exp", "iat", "nbf")
    made = {
        name: now + value if name in timed and value is not None else value
        for name, value in overrides.items()
    }
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    assert rule in refused(await token_request(http, signed(claims(entry["client_id"], issuer, **made))))


async def test_alg_none_and_hmac_with_the_public_key_are_refused(make_http: HttpFactory, issuer: str) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    body = claims(entry["client_id"], issuer)
    public_pem = RSA_KEY.as_pem(private=False)
    for forged in (
        handmade({"alg": "none", "kid": RSA_KEY.kid}, body, None),
        handmade({"alg": "HS256", "kid": RSA_KEY.kid}, {**body, "jti": uuid.uuid4().hex}, public_pem),
        handmade({"alg": "HS256"}, {**body, "jti": uuid.uuid4().hex}, json.dumps(RSA_KEY.as_dict()).encode()),
    ):
        assert "alg" in refused(await token_request(http, forged))


async def test_another_key_under_the_clients_kid_is_refused(make_http: HttpFactory, issuer: str) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    impostor = RSAKey.generate_key(2048, parameters={"kid": RSA_KEY.kid})
    body = claims(entry["client_id"], issuer)
    assert "signature" in refused(await token_request(http, signed(body, impostor)))
    # Without a kid every key of the client is tried; none verifies.
    unnamed = jwt.encode({"alg": "RS256"}, {**body, "jti": uuid.uuid4().hex}, impostor)
    assert "signature" in refused(await token_request(http, unnamed))


@pytest.mark.parametrize("typ", ["at+jwt", "oauth-id-jag+jwt", "dpop+jwt", "application/at+jwt"])
async def test_a_token_of_another_kind_is_not_a_client_assertion(
    make_http: HttpFactory, issuer: str, typ: str
) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    assert "typ" in refused(await token_request(http, signed(claims(entry["client_id"], issuer), typ=typ)))


async def test_mixing_an_assertion_with_a_secret_or_basic_is_invalid_request(
    make_http: HttpFactory, issuer: str
) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    assertion = signed(claims(entry["client_id"], issuer))
    refused(await token_request(http, assertion, client_secret="x" * 32), 400, "invalid_request")
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    mixed = await http.post("/token", data=form, auth=(entry["client_id"], "x" * 32))
    refused(mixed, 400, "invalid_request")
    wrong_type = await token_request(http, assertion, client_assertion_type="urn:example:saml")
    assert "client_assertion_type" in refused(wrong_type)


async def test_a_secret_client_cannot_authenticate_with_an_assertion_nor_a_key_client_with_a_secret(
    make_http: HttpFactory, issuer: str
) -> None:
    secret_entry = {
        "client_id": f"secret-{uuid.uuid4().hex[:8]}",
        "client_secret": "s" * 40,
        "grant_types": ["client_credentials"],
        "scope": SCOPE,
    }
    keyed = key_client()
    http = await make_http(auth_clients=[secret_entry, keyed])
    refused(await token_request(http, signed(claims(secret_entry["client_id"], issuer))))
    form = {"grant_type": "client_credentials", "client_id": keyed["client_id"], "client_secret": "s" * 40}
    refused(await http.post("/token", data=form))


@pytest.mark.parametrize(
    "assertion",
    [
        "x.y." + "x" * 10_000,  # over the assertion cap, under the form cap (16 kB: 413)
        "not-a-jwt",
        "a.b.c",
        b64(b"[" * 5000 + b"]" * 5000) + "." + b64(b"{}") + ".c2ln",
        b64(b'{"alg":"RS256"}') + "." + b64(b"[1,2]") + ".c2ln",
    ],
    ids=["oversized", "garbage", "three-dots", "deeply-nested-header", "claims-not-an-object"],
)
async def test_a_malformed_assertion_is_invalid_client_never_a_500(
    make_http: HttpFactory, assertion: str
) -> None:
    entry = key_client()
    http = await make_http(auth_clients=[entry])
    refused(await token_request(http, assertion, client_id=entry["client_id"]))
    refused(await token_request(http, assertion))  # no client_id: the sub cannot even be read


# --- what an anonymous caller can make the server fetch ------------------------------------------


async def test_made_up_kids_cost_at_most_one_jwks_fetch_per_interval(
    make_http: HttpFactory, issuer: str, document_host: DocumentHost
) -> None:
    jwks_uri = document_host.serve(json.dumps(public_set(EC_KEY)).encode())
    entry = key_client(jwks_uri=jwks_uri)
    http = await make_http(auth_clients=[entry])
    started = time.monotonic()
    for _ in range(30):
        made_up = signed(claims(entry["client_id"], issuer), EC_KEY, kid=uuid.uuid4().hex)
        assert "kid" in refused(await token_request(http, made_up))
    elapsed = time.monotonic() - started
    # The first fetches the set; each later one may refetch only after REFETCH_INTERVAL.
    assert 1 <= document_host.hits(jwks_uri) <= 1 + int(elapsed // REFETCH_INTERVAL) + 1
    # And the genuine key still works, from the cached set.
    before = document_host.hits(jwks_uri)
    response = await token_request(http, signed(claims(entry["client_id"], issuer), EC_KEY))
    assert response.status_code == 200, response.text
    assert document_host.hits(jwks_uri) == before


async def test_a_rotated_key_is_picked_up_from_the_jwks_uri(
    make_http: HttpFactory, issuer: str, document_host: DocumentHost
) -> None:
    jwks_uri = document_host.serve(json.dumps(public_set(EC_KEY)).encode())
    entry = key_client(jwks_uri=jwks_uri)
    http = await make_http(auth_clients=[entry])
    response = await token_request(http, signed(claims(entry["client_id"], issuer), EC_KEY))
    assert response.status_code == 200, response.text
    rotated = ECKey.generate_key("P-256", parameters={"kid": f"ec-{uuid.uuid4().hex[:6]}"})
    document_host.replace(jwks_uri, json.dumps(public_set(rotated)).encode())
    # Within REFETCH_INTERVAL of the last fetch the new kid is unknown; after it, it is fetched.
    deadline = time.monotonic() + REFETCH_INTERVAL + 10
    while True:
        response = await token_request(http, signed(claims(entry["client_id"], issuer), rotated))
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        assert "kid" in refused(response)
        await asyncio.sleep(0.5)  # polling for the refetch the interval allows, bounded above
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "jwks_uri",
    ["https://169.254.169.254/latest/keys", "https://10.0.0.1/keys", "https://[::ffff:127.0.0.1]:9/keys"],
    ids=["metadata-address", "private-network", "mapped-loopback"],
)
async def test_a_jwks_uri_on_a_non_public_address_is_never_fetched(
    make_http: HttpFactory, issuer: str, jwks_uri: str
) -> None:
    entry = key_client(jwks_uri=jwks_uri)
    http = await make_http(auth_clients=[entry])
    started = time.monotonic()
    refused(await token_request(http, signed(claims(entry["client_id"], issuer), EC_KEY)))
    assert time.monotonic() - started < 5  # refused before connecting, not after a timeout


async def test_a_metadata_document_publishing_a_private_key_is_refused(
    make_http: HttpFactory, document_host: DocumentHost
) -> None:
    http = await make_http()
    url = document_host.client_document(
        token_endpoint_auth_method="private_key_jwt", jwks={"keys": [EC_KEY.as_dict(private=True)]}
    )
    response = await http.get(
        "/authorize",
        params={
            "client_id": url,
            "redirect_uri": "http://127.0.0.1:53124/callback",
            "response_type": "code",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 400, response.text
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    "metadata",
    [
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": public_set(EC_KEY)},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/jwks"},
        {
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        },
    ],
    ids=["private-key-jwt-inline", "private-key-jwt-uri", "jwt-bearer"],
)
async def test_registration_cannot_make_a_key_client_or_an_enterprise_assertion_client(
    http: httpx2.AsyncClient, metadata: dict[str, Any]
) -> None:
    body = {
        "redirect_uris": ["http://127.0.0.1:53124/callback"],
        "client_name": "Self-registered",
        "application_type": "native",
        **metadata,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"


async def test_a_configured_private_key_with_private_members_stops_start_up(configure: Configure) -> None:
    entry = key_client(jwks={"keys": [RSA_KEY.as_dict(private=True)]})
    settings: Settings = configure(auth_clients=[entry])
    with pytest.raises(ValueError, match="private key material"):
        preregistered_clients(settings)


# The public registration path still works for an ordinary client (nothing above broke DCR).
async def test_ordinary_registration_still_works(http: httpx2.AsyncClient) -> None:
    registered = await register(http)
    assert registered["token_endpoint_auth_method"] == "none"
