"""shared/forwarded.py: which client address a trusted proxy's headers yield, and when none does."""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from shared.forwarded import ForwardedHeadersMiddleware, TrustedProxies, forwarded_hops, x_forwarded_for_hops
from shared.settings import SettingsError, load_settings

PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"])


def _believed(*headers: tuple[str, str], trusted: TrustedProxies = PROXIES) -> tuple[str, int] | None:
    raw = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers]
    return ForwardedHeadersMiddleware(_app, trusted).believed_client(raw)


async def _app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover - never called
    raise AssertionError


def test_trust_is_by_address_and_network_with_ipv4_mapped_ipv6_seen_as_ipv4() -> None:
    assert PROXIES.trusts("10.1.2.3")
    assert PROXIES.trusts("::ffff:10.1.2.3")
    assert PROXIES.trusts("2001:db8:ffff:1::1")
    assert not PROXIES.trusts("192.0.2.1")
    assert not PROXIES.trusts("not-an-address")
    assert not TrustedProxies([])
    assert TrustedProxies(["*"]).trusts("198.51.100.7")


def test_the_right_most_address_that_is_not_a_trusted_proxy_is_the_client() -> None:
    assert _believed(("X-Forwarded-For", "198.51.100.7, 203.0.113.5, 10.0.0.2")) == ("203.0.113.5", 0)


def test_several_header_lines_read_as_one_list_in_order() -> None:
    headers = (("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-For", "203.0.113.5:4711, 10.0.0.2"))
    assert _believed(*headers) == ("203.0.113.5", 4711)


def test_when_every_hop_is_trusted_the_nearest_is_the_client_never_what_the_sender_wrote() -> None:
    # A host inside a trusted network writes 127.0.0.1 first: it must not pass for loopback.
    assert _believed(("X-Forwarded-For", "127.0.0.1, 10.0.0.5, 10.0.0.2")) == ("10.0.0.2", 0)
    assert _believed(("X-Forwarded-For", "10.0.0.5, 10.0.0.2")) == ("10.0.0.2", 0)


@pytest.mark.parametrize(
    ("value", "hops"),
    [
        ("for=192.0.2.60;proto=http;by=203.0.113.43", ["192.0.2.60"]),
        ('for="[2001:db8:cafe::17]:4711"', ["[2001:db8:cafe::17]:4711"]),
        ("for=192.0.2.43, for=198.51.100.17", ["192.0.2.43", "198.51.100.17"]),
        ('For="_gazonk"', ["_gazonk"]),
        ("proto=https;by=10.0.0.1", [""]),
        ('for="a\\"b"', ['a"b']),
    ],
)
def test_rfc_7239_forwarded_elements_yield_their_for_values(value: str, hops: list[str]) -> None:
    assert forwarded_hops([value.encode()]) == hops


@pytest.mark.parametrize("value", ['for="unterminated', "for=1.2.3.4 junk", "for", ";;;=", "for=1.2.3.4;"])
def test_a_malformed_forwarded_header_yields_nothing(value: str) -> None:
    assert forwarded_hops([value.encode()]) is None


def test_ipv6_in_forwarded_is_read_without_brackets_and_port_and_normalised() -> None:
    assert _believed(("Forwarded", 'for="[2001:0db8:cafe::0017]:4711"')) == ("2001:db8:cafe::17", 4711)


def test_headers_that_name_different_clients_are_both_ignored() -> None:
    assert _believed(("X-Forwarded-For", "203.0.113.5"), ("Forwarded", "for=198.51.100.9")) is None
    assert _believed(("X-Forwarded-For", "203.0.113.5"), ("Forwarded", "for=203.0.113.5")) == (
        "203.0.113.5",
        0,
    )


@pytest.mark.parametrize(
    "headers",
    [
        (("X-Forwarded-For", "unknown"),),
        (("Forwarded", "for=_hidden"),),
        (("X-Forwarded-For", "203.0.113.5"), ("Forwarded", 'for="broken')),
        (("X-Forwarded-For", ""),),
        (("X-Forwarded-For", "203.0.113.5, " * 1000),),
    ],
)
def test_nothing_is_believed_when_the_client_hop_is_not_an_address(
    headers: tuple[tuple[str, str], ...],
) -> None:
    assert _believed(*headers) is None


def test_x_forwarded_for_hops_drop_empty_entries() -> None:
    assert x_forwarded_for_hops([b" 1.2.3.4 ,, 5.6.7.8 "]) == ["1.2.3.4", "5.6.7.8"]


async def _run(scope: Scope, trusted: TrustedProxies) -> Scope:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:  # pragma: no cover - never called
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:  # pragma: no cover - never called
        pass

    await ForwardedHeadersMiddleware(app, trusted)(scope, receive, send)
    return seen[0]


async def test_the_middleware_rewrites_the_client_only_for_a_trusted_peer() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.5")]
    trusted_peer = await _run({"type": "http", "client": ("10.0.0.2", 5000), "headers": headers}, PROXIES)
    assert trusted_peer["client"] == ("203.0.113.5", 0)
    other_peer = await _run({"type": "http", "client": ("192.0.2.1", 5000), "headers": headers}, PROXIES)
    assert other_peer["client"] == ("192.0.2.1", 5000)


def test_forwarded_allow_ips_takes_uvicorns_comma_separated_form_and_refuses_typos() -> None:
    settings = load_settings(forwarded_allow_ips="10.0.0.0/8, 127.0.0.1", _env_file=None)
    assert settings.forwarded_allow_ips == ["10.0.0.0/8", "127.0.0.1"]
    with pytest.raises(SettingsError) as failure:
        load_settings(forwarded_allow_ips="10.0.0.1/8", _env_file=None)
    assert "FORWARDED_ALLOW_IPS" in str(failure.value.code)
    with pytest.raises(SettingsError):
        load_settings(forwarded_allow_ips="proxy.internal", _env_file=None)
