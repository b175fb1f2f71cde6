"""The admin API's signing keys (docs/oauth.md, "Token formats"): listed, rotated, or refused.

Every test has a Store of its own (the keys are Store-wide), in the four deployments of this folder.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from auth_server.signing_keys import generate_key
from shared.storage.base import Store
from tests.integration.auth.conftest import ALL_DEPLOYMENTS, Configure, HttpFactory
from tests.integration.auth.helpers import add_client, is_active, tokens_for
from tests.integration.auth.test_admin_api import ADMIN, admin_call

# In every deployment: key rotation writes the store every instance signs from, in each mode's app.
DEPLOYMENTS = ALL_DEPLOYMENTS

STORE_PER_TEST = True


async def test_a_rotated_key_signs_new_tokens_and_the_old_one_stays_published(
    make_http: HttpFactory, store: Store, configure: Configure
) -> None:
    http = await make_http(**ADMIN, token_format="jwt")
    settings = configure(token_format="jwt")
    client = await add_client(store)
    before = await tokens_for(http, store, settings, client)
    (old,) = (await admin_call(http, "GET", "/signing-keys"))["keys"]
    assert old["signs"] is True
    assert old["source"] == "store"

    rotated = await admin_call(http, "POST", "/signing-keys")

    assert rotated["kid"] != old["kid"]
    assert [(k["kid"], k["signs"]) for k in rotated["keys"]] == [(rotated["kid"], True), (old["kid"], False)]
    published = {k["kid"] for k in (await http.get("/jwks")).json()["keys"]}
    assert published == {old["kid"], rotated["kid"]}
    after = await tokens_for(http, store, settings, client)
    assert _kid(after["access_token"]) == rotated["kid"]
    assert await is_active(http, before["access_token"]), "tokens the old key signed stay valid"


async def test_with_opaque_tokens_there_is_no_key_to_rotate(make_http: HttpFactory) -> None:
    admin = await make_http(**ADMIN)
    assert (await admin_call(admin, "GET", "/signing-keys"))["keys"] == []
    refused = await admin_call(admin, "POST", "/signing-keys", 409)
    assert "opaque" in refused["error_description"]


async def test_keys_from_a_file_are_rotated_by_editing_the_file(
    make_http: HttpFactory, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [generate_key()]}))
    http = await make_http(**ADMIN, token_format="jwt", jwt_signing_keys=str(path))
    (key,) = (await admin_call(http, "GET", "/signing-keys"))["keys"]
    assert key["source"] == "file"
    refused = await admin_call(http, "POST", "/signing-keys", 409)
    assert "JWT_SIGNING_KEYS" in refused["error_description"]


def _kid(jwt: str) -> str:
    header = jwt.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid
