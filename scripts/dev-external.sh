#!/usr/bin/env bash
# External mode: the authorization server and the MCP server as two processes.
# The MCP server validates tokens by RFC 7662 introspection against the auth server.
# Ctrl-C (or either process exiting) stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export AUTH_MODE=external

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

$PY -m auth_server &
pids+=($!)
$PY -m mcp_server --transport http &
pids+=($!)
# Each process logs its own banner (its URL, the issuer, the store), read from the same settings.
# Whichever exits first brings the other down with it.
wait -n
