"""Settings for third-party providers (docs/identity-providers.md): one way to name the trusted
issuer, exact spelling for other providers' issuers, and values that cannot weaken the checks."""

from __future__ import annotations

import pytest

from auth_server.upstream import callback_url, federated_subject
from auth_server.users import UserDirectory, scrypt_hash
from shared.settings import Settings, SettingsError, load_settings
from shared.validators.discovery import discovery_urls


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_external_mode_trusts_the_issuer_auth_server_url_names() -> None:
    s = settings(auth_mode="external", auth_server_url="https://idp.example/tenant")
    assert s.issuer == "https://idp.example/tenant"
    assert s.auth_server_base_url == s.issuer


def test_auth_issuer_url_only_when_the_issuer_differs_from_the_address() -> None:
    s = settings(
        auth_mode="external", auth_server_url="http://as.internal:3001", auth_issuer_url="https://as.example"
    )
    assert (s.issuer, s.auth_server_base_url) == ("https://as.example", "http://as.internal:3001")


def test_internal_mode_ignores_auth_server_url_for_its_own_issuer() -> None:
    assert settings(auth_server_url="https://idp.example").issuer == "http://127.0.0.1:3232"


def test_other_providers_issuers_keep_a_trailing_slash_our_own_urls_lose_it() -> None:
    s = settings(
        auth_mode="external",
        auth_server_url="https://tenant.auth0.com/",
        upstream_oidc_issuer="https://tenant.auth0.com/",
        upstream_oidc_client_id="x",
        mcp_public_url="https://mcp.example/",
    )
    assert s.issuer == "https://tenant.auth0.com/"
    assert s.upstream_oidc_issuer == "https://tenant.auth0.com/"
    assert s.mcp_resource_url == "https://mcp.example/mcp"


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["RS256", "hs512"], []])
def test_jwt_algorithms_cannot_include_none_or_hmac(algorithms: list[str]) -> None:
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None, jwt_algorithms=algorithms)
    assert "JWT_ALGORITHMS" in str(failure.value.code)


def test_introspection_auth_method_is_basic_or_post() -> None:
    assert settings().introspection_auth_method == "client_secret_basic"
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None, introspection_auth_method="private_key_jwt")
    assert "INTROSPECTION_AUTH_METHOD" in str(failure.value.code)


def test_federated_login_needs_a_client_id_and_openid() -> None:
    with pytest.raises(SettingsError) as failure:
        load_settings(_env_file=None, upstream_oidc_issuer="https://idp.example")
    assert "UPSTREAM_OIDC_CLIENT_ID" in str(failure.value.code)
    with pytest.raises(SettingsError) as failure:
        load_settings(
            _env_file=None,
            upstream_oidc_issuer="https://idp.example",
            upstream_oidc_client_id="x",
            upstream_oidc_scope="email",
        )
    assert "openid" in str(failure.value.code)


def test_discovery_tries_rfc8414_path_inserted_then_openid_path_appended() -> None:
    assert discovery_urls("https://login.example.com/tenant/v2.0") == (
        "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0",
        "https://login.example.com/tenant/v2.0/.well-known/openid-configuration",
    )
    assert discovery_urls("https://as.example", "http://as.internal:3001") == (
        "http://as.internal:3001/.well-known/oauth-authorization-server",
        "http://as.internal:3001/.well-known/openid-configuration",
    )


def test_federated_subjects_are_namespaced_and_local_names_cannot_look_like_them() -> None:
    assert federated_subject("https://idp.example", "248289761001") == "https://idp.example#248289761001"
    with pytest.raises(ValueError, match="://"):
        UserDirectory.from_settings(settings(auth_users={"https://idp.example#1": scrypt_hash("x", n=2)}))


def test_the_upstream_callback_is_under_our_issuer() -> None:
    assert (
        callback_url(settings(auth_issuer_url="https://as.example/t1"))
        == "https://as.example/t1/login/callback"
    )
