#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: redis-server (storage tests, both
# modes on Redis, a local Redis Cluster), redis-sentinel (the Sentinel failover test) and chromium
# (browser tests through Playwright). Idempotent; quiet when present.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "ensure-system-deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start a system redis on 6379 (and a sentinel on 26379) where an init system runs;
# the tests start their own on free ports.
