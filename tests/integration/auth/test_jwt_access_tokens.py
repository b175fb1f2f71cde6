"""RFC 9068 JWT access tokens (JW-01), the JWKS they verify against, and key rotation."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from auth_server.signing_keys import SigningKeys
from auth_server.validator import InProcessTokenValidator
from shared.storage.base import Store
from shared.storage.records import JWKS_KEY
from shared.validation import TokenRejected
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, Configure, HttpFactory
from tests.integration.auth.helpers import RESOURCE, add_client, introspect, tokens_for

# In every deployment: signing keys are shared through the store, and each mode publishes its own JWKS for
# its own issuer.
DEPLOYMENTS = ALL_DEPLOYMENTS

JWT = {"token_format": "jwt"}
# The signing keys live in the Store, one set per deployment: each test gets a Store of its own.
STORE_PER_TEST = True


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(index: int) -> dict[str, Any]:
        raw = token.split(".")[index]
        decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return decoded

    return part(0), part(1)


async def published_keys(http: httpx2.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await http.get("/jwks")).json())


async def test_jwt_access_tokens_carry_the_rfc_9068_header_and_claims(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**JWT)
    settings = configure(**JWT)
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client, scope=("notes:read",))

    header, claims = segments(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["iss"] == settings.issuer
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == "demo"
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "notes:read"
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl
    assert claims["jti"]

    verified = jwt.decode(body["access_token"], await published_keys(http), algorithms=["ES256"])
    assert verified.header["kid"] == header["kid"]
    assert "refresh_token" in body
    assert "." not in body["refresh_token"]  # refresh tokens stay opaque


async def test_the_jwks_publishes_public_keys_only_to_any_origin(make_http: HttpFactory) -> None:
    http = await make_http(**JWT)
    response = await http.get("/jwks", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert {"kid", "alg", "use", "kty"} <= set(key)
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    preflight = await http.options(
        "/jwks", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 200  # Starlette's CORSMiddleware
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_instances_sharing_a_store_sign_with_and_publish_the_same_keys(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    first, second = await make_http(**JWT), await make_http(**JWT)
    assert (await first.get("/jwks")).json() == (await second.get("/jwks")).json()
    client = await add_client(store)
    body = await tokens_for(first, store, configure(**JWT), client)
    assert (await introspect(second, body["access_token"])).json()["active"] is True


async def test_a_revoked_jwt_is_inactive_and_rejected_by_the_in_process_validator(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**JWT)
    settings = configure(**JWT)
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    validator = InProcessTokenValidator.from_settings(settings, store)
    principal = await validator.validate(body["access_token"])
    assert principal.audience == (RESOURCE,)

    assert (
        await http.post("/revoke", data={"token": body["access_token"], **client.auth()})
    ).status_code == 200

    assert (await introspect(http, body["access_token"])).json() == {"active": False}
    with pytest.raises(TokenRejected):
        await validator.validate(body["access_token"])


async def test_after_rotation_a_new_key_signs_and_old_tokens_stay_valid(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    settings = configure(**JWT)
    before = await make_http(**JWT)
    client = await add_client(store)
    old = await tokens_for(before, store, settings, client)
    old_kid = segments(old["access_token"])[0]["kid"]

    new_kid = await SigningKeys.from_settings(settings, store).rotate()

    after = await make_http(**JWT)  # a fresh instance reads the rotated keys
    new = await tokens_for(after, store, settings, client)
    assert segments(new["access_token"])[0]["kid"] == new_kid != old_kid
    published = {key["kid"] for key in (await after.get("/jwks")).json()["keys"]}
    assert published == {old_kid, new_kid}
    validator = InProcessTokenValidator.from_settings(settings, store)
    for token in (old["access_token"], new["access_token"]):
        await validator.validate(token)
        assert (await introspect(after, token)).json()["active"] is True
    # The instance that cached the old keys meets the new kid and reloads.
    assert (await introspect(before, new["access_token"])).json()["active"] is True


async def test_a_retired_key_is_unpublished_once_its_tokens_have_expired(
    store: Store, configure: Configure
) -> None:
    clock = [1_000_000.0]
    settings = configure(**JWT, access_token_ttl=60)
    keys = SigningKeys.from_settings(settings, store, clock=lambda: clock[0])
    first = (await keys.public_jwks())["keys"][0]["kid"]
    second = await keys.rotate()
    assert {k["kid"] for k in (await keys.public_jwks())["keys"]} == {first, second}
    clock[0] += 61
    await keys.rotate()
    kids = {k["kid"] for k in (await keys.public_jwks())["keys"]}
    assert first not in kids
    assert second in kids


async def test_keys_from_a_private_jwks_file_sign_with_rs256(
    make_http: HttpFactory, store: Store, tmp_path: Path, configure: Configure
) -> None:
    rsa = RSAKey.generate_key(2048, private=True, auto_kid=True)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [rsa.as_dict(private=True)]}))
    http = await make_http(**JWT, jwt_signing_keys=str(path))
    settings = configure(**JWT, jwt_signing_keys=str(path))
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    header, _ = segments(body["access_token"])
    assert (header["alg"], header["kid"]) == ("RS256", rsa.kid)
    (published,) = (await http.get("/jwks")).json()["keys"]
    assert published["kid"] == rsa.kid
    assert "d" not in published
    assert await store.get(JWKS_KEY) is None  # nothing private copied into the store
    await InProcessTokenValidator.from_settings(settings, store).validate(body["access_token"])


async def test_opaque_tokens_issued_before_switching_to_jwt_stay_valid(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    opaque_http = await make_http()
    client = await add_client(store)
    opaque = await tokens_for(opaque_http, store, configure(), client)
    jwt_http = await make_http(**JWT)
    assert (await introspect(jwt_http, opaque["access_token"])).json()["active"] is True
    await InProcessTokenValidator.from_settings(configure(**JWT), store).validate(opaque["access_token"])


async def test_forged_jwts_are_inactive_and_rejected(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**JWT)
    settings = configure(**JWT)
    client = await add_client(store)
    genuine = await tokens_for(http, store, settings, client)
    header, claims = segments(genuine["access_token"])
    validator = InProcessTokenValidator.from_settings(settings, store)

    foreign = ECKey.generate_key("P-256", private=True)
    own = ECKey.import_key(json.loads(await store.get(JWKS_KEY) or "{}")["keys"][0]["jwk"])
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
    body = genuine["access_token"].split(".")[1]
    forgeries = {
        "alg none": f"{unsigned}.{body}.",
        "foreign key, our kid": jwt.encode(header, claims, foreign, algorithms=["ES256"]),
        "our key, typ JWT": jwt.encode({**header, "typ": "JWT"}, claims, own, algorithms=["ES256"]),
        "flipped signature": genuine["access_token"][:-4]
        + ("AAAA" if not genuine["access_token"].endswith("AAAA") else "BBBB"),
        "unknown kid": jwt.encode({**header, "kid": "nope"}, claims, foreign, algorithms=["ES256"]),
    }
    for name, token in forgeries.items():
        assert (await introspect(http, token)).json() == {"active": False}, name
        with pytest.raises(TokenRejected):
            await validator.validate(token)


async def test_an_opaque_deployment_never_creates_a_private_key(make_http: HttpFactory, store: Store) -> None:
    http = await make_http()
    assert (await http.get("/jwks")).json() == {"keys": []}
    assert (await introspect(http, "eyJhbGciOiJFUzI1NiIsImtpZCI6Ingi.e30.c2ln")).json() == {"active": False}
    assert await store.get(JWKS_KEY) is None


async def test_withdrawing_a_compromised_key_rejects_its_tokens_even_if_verified_before(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**JWT)
    settings = configure(**JWT)
    client = await add_client(store)
    body = await tokens_for(http, store, settings, client)
    keys = SigningKeys.from_settings(settings, store, refresh_interval=0)
    validator = InProcessTokenValidator.from_settings(settings, store, keys=keys)
    await validator.validate(body["access_token"])  # verified once, remembered

    await store.delete(JWKS_KEY)  # the operator withdraws every key; a new one gets generated

    with pytest.raises(TokenRejected) as rejected:
        await validator.validate(body["access_token"])
    assert rejected.value.reason == "bad_signature"
