"""Stand-ins for providers we cannot reach from here: their documented token shapes, checked with
the settings docs/identity-providers.md gives for them, against oidc-provider's real metadata and
JWKS (tokens signed with the provider's own key, so only the shape differs).

- Microsoft Entra ID, v2.0 tokens: the issuer `https://login.microsoftonline.com/<tenant>/v2.0`
  (OpenID discovery only), header `typ: JWT`, `aud` the API's application (client) ID, `scp` a
  space-separated string, `oid` the stable user id; v1.0-style tokens name the App ID URI instead.
- Auth0: the issuer ends with "/", `aud` the API identifier (plus `<issuer>userinfo` when `openid`
  was asked for), `typ: JWT` under the default token profile.
Scalekit's shape runs end to end with the SDK client in test_path_issuers.py.
"""

from __future__ import annotations

import httpx2

from shared.settings import Settings
from shared.validators.jwt import JwtValidator
from tests.idp.conftest import ENTRA_TENANT_PATH, PathWorld, rejection
from tests.idp.provider import IdentityProvider
from tests.idp.test_issuer_spelling import MCP_BASE, slash_idp

__all__ = ["slash_idp"]  # fixture: a provider whose issuer ends with "/", as Auth0's does

API_CLIENT_ID = "2f3e4d5c-1111-4222-8333-944455566677"  # the MCP API's app registration
APP_ID_URI = f"api://{API_CLIENT_ID}"


# --- Entra ID -----------------------------------------------------------------------------------
def entra_settings(path_world: PathWorld, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mcp_public_url": MCP_BASE,
        "auth_mode": "external",
        "auth_server_url": path_world.idp.issuer + ENTRA_TENANT_PATH,
        "token_format": "jwt",
        "accepted_audiences": [API_CLIENT_ID, APP_ID_URI],
        "jwt_token_types": ["at+jwt", "JWT"],
        "token_scope_claim": "scp",
        "token_subject_claim": "oid",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def entra_token(idp: IdentityProvider, issuer: str, audience: str, **claims: object) -> str:
    shape = {"scp": "mcp:tools:read notes:read", "oid": "00000000-aaaa-4bbb-8ccc-0000000000a1", "ver": "2.0"}
    values = idp.claims("pairwise-subject", audience, None, azp="client-app-id", **{**shape, **claims})
    return idp.sign(values, header={"typ": "JWT"})


async def test_an_entra_shaped_v2_token_is_accepted_with_the_documented_settings(
    path_world: PathWorld,
) -> None:
    settings = entra_settings(path_world)
    issuer = settings.issuer
    with httpx2.Client(trust_env=False, timeout=5.0) as http:  # as at Entra: OpenID discovery only
        assert (
            http.get(
                f"{path_world.idp.issuer}/.well-known/oauth-authorization-server{ENTRA_TENANT_PATH}"
            ).status_code
            == 404
        )
        assert http.get(f"{issuer}/.well-known/openid-configuration").json()["issuer"] == issuer
    validator = JwtValidator.from_settings(settings)
    try:
        principal = await validator.validate(entra_token(path_world.idp, issuer, API_CLIENT_ID, iss=issuer))
        v1_style = await validator.validate(entra_token(path_world.idp, issuer, APP_ID_URI, iss=issuer))
    finally:
        await validator.aclose()
    assert principal.subject == "00000000-aaaa-4bbb-8ccc-0000000000a1"
    assert principal.scopes == {"mcp:tools:read", "notes:read"}
    assert principal.audience == (API_CLIENT_ID,)
    assert principal.issuer == issuer
    assert v1_style.audience == (APP_ID_URI,)


async def test_entra_shaped_tokens_for_another_api_or_tenant_or_without_the_settings_are_refused(
    path_world: PathWorld,
) -> None:
    settings = entra_settings(path_world)
    issuer, idp = settings.issuer, path_world.idp
    other_tenant = issuer.replace("6b1a2c3d", "7c2b3d4e")
    assert await rejection(
        settings, entra_token(idp, issuer, "9a9a9a9a-0000-4000-8000-000000000000", iss=issuer)
    ) == ("wrong_audience")
    assert (
        await rejection(settings, entra_token(idp, issuer, API_CLIENT_ID, iss=other_tenant)) == "wrong_issuer"
    )
    token = entra_token(idp, issuer, API_CLIENT_ID, iss=issuer)
    assert (
        await rejection(entra_settings(path_world, jwt_token_types=["at+jwt"]), token)
        == "not_an_access_token"
    )
    assert await rejection(entra_settings(path_world, accepted_audiences=[]), token) == "wrong_audience"


# --- Auth0 ----------------------------------------------------------------------------------------
API_IDENTIFIER = "https://api.example.com/"  # an Auth0 API identifier that is not the MCP URL


async def test_an_auth0_shaped_token_naming_the_api_identifier_is_accepted(
    slash_idp: IdentityProvider,
) -> None:
    values: dict[str, object] = {
        "mcp_public_url": MCP_BASE,
        "auth_mode": "external",
        "auth_server_url": slash_idp.issuer,  # with its trailing slash, exactly as Auth0 spells it
        "token_format": "jwt",
        "accepted_audiences": [API_IDENTIFIER],
        "jwt_token_types": ["at+jwt", "JWT"],
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    audience = [API_IDENTIFIER, slash_idp.issuer + "userinfo"]
    token = slash_idp.sign(
        slash_idp.claims("auth0|abc123", audience, "mcp:tools:read notes:read"), header={"typ": "JWT"}
    )
    assert await rejection(settings, token) is None
    assert await rejection(Settings(_env_file=None, **{**values, "accepted_audiences": []}), token) == (  # type: ignore[arg-type]
        "wrong_audience"
    )
    userinfo_only = slash_idp.sign(slash_idp.claims("auth0|abc123", slash_idp.issuer + "userinfo", "openid"))
    assert await rejection(settings, userinfo_only) == "wrong_audience"
