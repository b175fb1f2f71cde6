"""The per-address budget of lookups that turn out unknown (mcp_server/protection/unknown_tokens.py);
tests/security/test_introspection_flooding.py attacks it over HTTP."""

from __future__ import annotations

from mcp_server.protection.unknown_tokens import UnknownTokenLimit, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("unknown") == "unknown"


def test_an_address_past_its_limit_waits_for_its_window_and_others_do_not() -> None:
    clock = Clock()
    limit = UnknownTokenLimit(2, window=60, clock=clock)
    assert [limit.spend("192.0.2.1") for _ in range(3)] == [0, 0, 60]
    assert limit.spend("2001:db8::1") == 0
    clock.now += 59.5
    assert limit.spend("192.0.2.1") == 1
    clock.now += 0.5
    assert limit.spend("192.0.2.1") == 0  # a new window


def test_a_refunded_lookup_is_spendable_again_and_refunds_never_go_below_zero() -> None:
    limit = UnknownTokenLimit(1, clock=Clock())
    assert limit.spend("192.0.2.1") == 0
    limit.refund("192.0.2.1")
    limit.refund("192.0.2.1")
    assert limit.spend("192.0.2.1") == 0
    assert limit.spend("192.0.2.1") > 0


def test_the_table_keeps_at_most_max_addresses_dropping_the_oldest_window() -> None:
    clock = Clock()
    limit = UnknownTokenLimit(1, max_addresses=3, clock=clock)
    for n in range(5):
        clock.now += 1
        assert limit.spend(f"192.0.2.{n}") == 0
    assert len(limit) == 3
    assert limit.spend("192.0.2.4") > 0  # the newest are still counted
    assert limit.spend("192.0.2.0") == 0  # the oldest was dropped


def test_several_workers_share_out_the_budget_of_an_address() -> None:
    from shared.settings import Settings

    def budget(**values: object) -> int:
        limit = UnknownTokenLimit.from_settings(Settings(_env_file=None, **values))  # type: ignore[call-arg]
        spent = 0
        while limit.spend("192.0.2.7") == 0:
            spent += 1
        return spent

    assert budget(unknown_tokens_per_minute=60) == 60
    assert budget(unknown_tokens_per_minute=60, web_concurrency=2) == 30
    assert budget(unknown_tokens_per_minute=10, web_concurrency=3) == 4  # rounded up, never 0
