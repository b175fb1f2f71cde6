"""Behind a proxy (issue 9 item 6): forwarding headers move a client's rate-limit bucket only
when a proxy FORWARDED_ALLOW_IPS names sent them.

Real processes in both modes (internal: `python -m mcp_server` serves /token; external: the
standalone `python -m auth_server` does) with a limit of 5 requests per minute per client on
/token, trusting one "proxy": the loopback address 127.0.0.9, which the test connects from when
it plays the proxy. Every other loopback address is
an ordinary, untrusted client. Each test uses client addresses of its own (TEST-NET ranges in
the headers), so the shared Store's counters never mix tests.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from auth_server.users import scrypt_hash
from tests.e2e.servers import Deployment, build_deployment

LIMIT = 5
PROXY = "127.0.0.9"
_addresses = itertools.count(1)


@pytest.fixture(scope="module", params=["internal", "external"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # Configured users: with the demo user in effect a development server refuses every relayed
    # request (test_development_defaults.py), so these servers have no development default.
    users = json.dumps({"alice": scrypt_hash("alice-password", n=2**10)})
    env = {"RATE_LIMIT_PER_MINUTE": str(LIMIT), "FORWARDED_ALLOW_IPS": PROXY, "AUTH_USERS": users}
    workdir = Path(tmp_path_factory.mktemp("proxy"))
    deployment = build_deployment(request.param, "memory", workdir, env=env)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


def _fresh(prefix: str = "203.0.113") -> str:
    return f"{prefix}.{next(_addresses)}"


def _token_request(server: Deployment, source: str, headers: dict[str, str]) -> int:
    """POST /token (an empty form: 400 until the limit, then 429) from the loopback `source`."""
    transport = httpx2.HTTPTransport(local_address=source)
    with httpx2.Client(transport=transport, trust_env=False, timeout=5) as client:
        return client.post(f"{server.issuer}/token", headers=headers, data={}).status_code


def _statuses(server: Deployment, source: str, headers: list[dict[str, str]]) -> list[int]:
    return [_token_request(server, source, h) for h in headers]


def test_a_client_that_is_not_a_trusted_proxy_cannot_escape_the_limit_with_x_forwarded_for(
    server: Deployment,
) -> None:
    spoofed = [{"X-Forwarded-For": _fresh()} for _ in range(LIMIT + 3)]
    statuses = _statuses(server, "127.0.0.20", spoofed)
    assert statuses[:LIMIT] == [400] * LIMIT
    assert statuses[LIMIT:] == [429] * 3


def test_a_client_that_is_not_a_trusted_proxy_cannot_escape_the_limit_with_forwarded(
    server: Deployment,
) -> None:
    spoofed = [{"Forwarded": f"for={_fresh()}"} for _ in range(LIMIT + 2)]
    statuses = _statuses(server, "127.0.0.21", spoofed)
    assert statuses[LIMIT:] == [429] * 2


def test_two_users_behind_the_trusted_proxy_get_separate_buckets(server: Deployment) -> None:
    alice, bob = _fresh(), _fresh()
    alice_statuses = _statuses(server, PROXY, [{"X-Forwarded-For": alice}] * (LIMIT + 1))
    assert alice_statuses[-1] == 429
    assert _token_request(server, PROXY, {"X-Forwarded-For": bob}) == 400
    # RFC 7239 Forwarded, as a proxy such as HAProxy (`option forwarded`) writes it.
    carol = _fresh()
    assert (
        _statuses(server, PROXY, [{"Forwarded": f'for="{carol}:4711";proto=https'}] * (LIMIT + 1))[-1] == 429
    )
    assert _token_request(server, PROXY, {"Forwarded": f"for={_fresh()}"}) == 400


def test_addresses_a_client_puts_left_of_the_proxys_own_entry_are_not_believed(server: Deployment) -> None:
    """The proxy appends the address it saw; whatever the client sent before it is the client's."""
    attacker = _fresh()
    headers = [{"X-Forwarded-For": f"{_fresh('198.51.100')}, {attacker}"} for _ in range(LIMIT + 2)]
    assert _statuses(server, PROXY, headers)[LIMIT:] == [429] * 2


def test_a_forwarded_header_smuggled_past_an_x_forwarded_for_proxy_is_not_believed(
    server: Deployment,
) -> None:
    """nginx appends to X-Forwarded-For and passes a client's own `Forwarded` through untouched:
    when the two disagree, neither is believed (the request counts as the proxy's), so a fresh
    made-up `Forwarded` per request buys no fresh bucket, and real users keep theirs."""
    attacker = _fresh()
    smuggled = [
        {"X-Forwarded-For": attacker, "Forwarded": f"for={_fresh('198.51.100')}"} for _ in range(LIMIT + 2)
    ]
    statuses = _statuses(server, PROXY, smuggled)
    assert statuses[LIMIT:] == [429] * 2
    assert _token_request(server, PROXY, {"X-Forwarded-For": _fresh()}) == 400


def test_the_audit_log_names_the_address_the_proxy_reported(server: Deployment) -> None:
    user = _fresh()
    assert _statuses(server, PROXY, [{"X-Forwarded-For": user}] * (LIMIT + 1))[-1] == 429
    assert any('"rate_limited"' in line and user in line for line in server.logs().splitlines())


def test_a_client_behind_the_proxy_naming_itself_loopback_cannot_read_the_loopback_only_metrics(
    server: Deployment,
) -> None:
    """/metrics (no METRICS_TOKEN) answers loopback clients only: the proxy on this host may scrape
    it, a user behind the proxy who writes 127.0.0.1 into X-Forwarded-For may not."""
    transport = httpx2.HTTPTransport(local_address=PROXY)
    metrics = f"{server.issuer}/metrics"
    with httpx2.Client(transport=transport, trust_env=False, timeout=5) as proxy:
        assert proxy.get(metrics).status_code == 200
        forged = proxy.get(metrics, headers={"X-Forwarded-For": f"127.0.0.1, {_fresh()}"})
        assert forged.status_code == 403
        forged = proxy.get(metrics, headers={"Forwarded": f'for="127.0.0.1", for={_fresh()}'})
        assert forged.status_code == 403
