"""ACCEPTED_AUDIENCES and ACCEPTED_ISSUERS: what another provider names us, and nothing more.

An Entra application ID URI, a Scalekit resource ID or an Auth0 API identifier in `aud` is
accepted once configured, by the JWT and the introspection validator alike (and by the bearer
middleware's own check); every other audience is still refused, and the protected resource
metadata still names the MCP URL as the resource. The tokens come from the small authorization
server of harness.py, which signs (or introspects) whatever claims the test asks for.
"""

from __future__ import annotations

import pytest

from shared.settings import Settings, SettingsError, load_settings
from tests.integration.rs.conftest import FORGEABLE_KINDS, MODERN, Mcp, Rs, StartRs

ENTRA_APP_ID_URI = "api://4f0c8a9e-7f3b-4c2d-9a51-0d6e1b2c3a4f"
SCALEKIT_RESOURCE_ID = "res_92015146095"
OTHER_APP = "api://another-application"


async def whoami(mcp: Mcp, token: str) -> dict[str, object]:
    result: dict[str, object] = (await mcp.call_tool("whoami", token))["structuredContent"]
    return result


async def refused_description(rs: Rs, token: str) -> str:
    response = await Mcp(rs.http, MODERN).post("tools/call", {"name": "whoami", "arguments": {}}, token)
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    description: str = response.json()["error_description"]
    return description


@pytest.mark.parametrize("kind", FORGEABLE_KINDS)
async def test_a_configured_extra_audience_is_accepted_and_any_other_refused(
    start_rs: StartRs, kind: str
) -> None:
    rs = await start_rs(kind, accepted_audiences=[ENTRA_APP_ID_URI, SCALEKIT_RESOURCE_ID])
    mcp = Mcp(rs.http, MODERN)
    for audience in (
        ENTRA_APP_ID_URI,
        SCALEKIT_RESOURCE_ID,
        [rs.mcp_url, SCALEKIT_RESOURCE_ID],  # Scalekit with its Server URL set
        ["https://graph.example", ENTRA_APP_ID_URI],
        rs.mcp_url,  # our own URL, as before
    ):
        identity = await whoami(mcp, await rs.token("alice", aud=audience))
        assert identity["subject"] == "alice"
        assert identity["audience"] == (audience if isinstance(audience, list) else [audience])

    for audience in (OTHER_APP, [OTHER_APP, "https://graph.example"], ENTRA_APP_ID_URI.upper(), "res_", ""):
        token = await rs.token("alice", aud=audience)
        assert await refused_description(rs, token) == "The access token was not issued for this resource"
    without_aud = await rs.token("alice", aud=None)  # claims() drops None: no aud at all
    assert await refused_description(rs, without_aud) == "The access token was not issued for this resource"


@pytest.mark.parametrize("rs", FORGEABLE_KINDS, indirect=True)
async def test_without_the_setting_only_our_own_url_is_an_audience(rs: Rs) -> None:
    assert await refused_description(rs, await rs.token("alice", aud=ENTRA_APP_ID_URI)) == (
        "The access token was not issued for this resource"
    )


@pytest.mark.parametrize("kind", FORGEABLE_KINDS)
async def test_the_protected_resource_metadata_still_names_the_mcp_url(start_rs: StartRs, kind: str) -> None:
    rs = await start_rs(kind, accepted_audiences=[ENTRA_APP_ID_URI])
    prm = (await rs.http.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert prm["resource"] == rs.mcp_url
    assert ENTRA_APP_ID_URI not in str(prm)


@pytest.mark.parametrize("kind", FORGEABLE_KINDS)
async def test_a_configured_extra_issuer_is_accepted_with_the_trusted_issuers_keys(
    start_rs: StartRs, kind: str
) -> None:
    environment = "https://env.example"
    rs = await start_rs(kind, accepted_issuers=[environment])
    mcp = Mcp(rs.http, MODERN)
    identity = await whoami(mcp, await rs.token("alice", iss=environment))
    assert identity["issuer"] == environment
    for issuer in ("https://env.example/", "https://other-env.example", "https://env.example/resources/x"):
        token = await rs.token("alice", iss=issuer)
        assert await refused_description(rs, token) == "The access token is invalid"
    if kind == "jwt":  # the keys still come from AUTH_SERVER_URL's metadata, whatever the iss says
        stranger = rs.authority.new_key("stranger")
        forged = rs.authority.mint_jwt("alice", ["mcp:tools:read"], key=stranger, iss=environment)
        assert await refused_description(rs, forged) == "The access token is invalid"


@pytest.mark.parametrize(
    "values",
    [
        {"accepted_audiences": [ENTRA_APP_ID_URI]},
        {"accepted_issuers": ["https://env.example"]},
    ],
)
def test_the_settings_are_refused_where_our_own_server_issues_the_tokens(
    values: dict[str, list[str]],
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, auth_mode="internal", **values)
    assert "AUTH_MODE=external" in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("accepted_audiences", ["has space"]),
        ("accepted_audiences", [""]),
        ("accepted_issuers", ["env.example"]),
        ("accepted_issuers", ["https://login.microsoftonline.com/{tenantid}/v2.0"]),
        ("accepted_issuers", ["https://env.example?x=1"]),
    ],
)
def test_malformed_values_stop_start_up_naming_the_setting(name: str, value: list[str]) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, auth_mode="external", **{name: value})
    assert name.upper() in str(refused.value)


def test_derived_sets_always_contain_our_own_url_and_issuer() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        auth_mode="external",
        auth_server_url="https://env.example/resources/res_1",
        accepted_audiences=["res_1"],
        accepted_issuers=["https://env.example"],
    )
    assert settings.token_audiences == {settings.mcp_resource_url, "res_1"}
    assert settings.token_issuers == {"https://env.example/resources/res_1", "https://env.example"}
