"""The authorization extensions this server implements, declared where MCP puts extensions.

MCP's authorization extensions (modelcontextprotocol/ext-auth) are negotiated like any other
extension (SEP-2133): a server lists them in `capabilities.extensions` of its `initialize`
answer (2026-07-28: `server/discover`). They add no method and no tool: what they change is
what the authorization server accepts at /token (docs/agent-identity.md). So each is an SDK
`Extension` with its identifier and nothing else, declared when the deployment serves it:

* `io.modelcontextprotocol/oauth-client-credentials` (SEP-1046) whenever tokens are checked:
  configured machine clients get tokens with client_credentials, authenticated by a secret or
  by `private_key_jwt`;
* `io.modelcontextprotocol/enterprise-managed-authorization` (SEP-990) when the authorization
  server accepts ID-JAGs (ENTERPRISE_IDP_ISSUERS).

With a third-party authorization server (docs/identity-providers.md) the provider decides what
it accepts; the declarations follow this deployment's settings, which name no such provider's
features.
"""

from __future__ import annotations

from mcp.server.extension import Extension

from shared.settings import Settings

CLIENT_CREDENTIALS_EXTENSION = "io.modelcontextprotocol/oauth-client-credentials"
ENTERPRISE_MANAGED_EXTENSION = "io.modelcontextprotocol/enterprise-managed-authorization"


class ClientCredentialsExtension(Extension):
    identifier = CLIENT_CREDENTIALS_EXTENSION


class EnterpriseManagedAuthorizationExtension(Extension):
    identifier = ENTERPRISE_MANAGED_EXTENSION


def authorization_extensions(settings: Settings) -> list[Extension]:
    if settings.auth_mode == "none":
        return []
    extensions: list[Extension] = [ClientCredentialsExtension()]
    if settings.enterprise_idp_issuers:
        extensions.append(EnterpriseManagedAuthorizationExtension())
    return extensions
