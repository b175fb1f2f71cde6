#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: redis-server (storage tests, both
# modes on Redis, a local Redis Cluster), redis-sentinel (the Sentinel failover test), chromium
# (browser tests through Playwright), nginx and caddy (docs/deployment.md's reverse proxies, run
# by tests/deployment/ in front of the real servers). Idempotent; quiet when present.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/caddy ] || missing+=(caddy)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "ensure-system-deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
# The packages would start their system services (redis on 6379, nginx and caddy on port 80 of
# every interface) where an init system runs. The tests start their own on free loopback ports,
# so service starts are denied during the install (policy-rc.d, which invoke-rc.d and
# deb-systemd-invoke obey) unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# ensure-system-deps.sh: no service starts during its install\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
