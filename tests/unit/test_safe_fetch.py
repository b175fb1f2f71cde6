"""SSRF rules of the metadata-document fetcher that need a DNS answer no real resolver gives here:
names resolving to private addresses, mixed answers, and a rebinding resolver (CM-06)."""

from __future__ import annotations

import ipaddress

import pytest

from auth_server.clients.fetch import FetchRefused, is_public_address, parse_target, vetted_address


class FakeResolver:
    """Gives each answer in turn (a rebinding DNS server when they differ); records lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.calls: list[str] = []
        self._answers = list(answers)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self._answers.pop(0) if self._answers else ["127.0.0.1"]


resolver_answering = FakeResolver


@pytest.mark.parametrize(
    "answer",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["127.0.0.1"],
        ["::1"],
        ["fd00::1"],
        ["::ffff:10.0.0.1"],
        ["100.64.1.1"],
    ],
)
async def test_a_name_resolving_to_a_special_use_address_is_refused(answer: list[str]) -> None:
    with pytest.raises(FetchRefused, match="non-public"):
        await vetted_address(
            parse_target("https://client.example/c.json"),
            allow_loopback=False,
            resolver=resolver_answering(answer),
        )


async def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    resolver = resolver_answering(["93.184.216.34", "10.0.0.1"])
    with pytest.raises(FetchRefused):
        await vetted_address(
            parse_target("https://client.example/c.json"), allow_loopback=False, resolver=resolver
        )


async def test_the_name_is_resolved_once_and_the_vetted_address_is_what_gets_used() -> None:
    resolver = resolver_answering(["93.184.216.34"], ["127.0.0.1"])  # rebinds on a second lookup
    address = await vetted_address(
        parse_target("https://client.example/c.json"), allow_loopback=False, resolver=resolver
    )
    assert address == "93.184.216.34"
    assert resolver.calls == ["client.example"]


async def test_a_loopback_literal_is_allowed_only_with_the_setting() -> None:
    target = parse_target("http://localhost:8080/c.json")
    assert (
        await vetted_address(target, allow_loopback=True, resolver=resolver_answering(["127.0.0.1"]))
        == "127.0.0.1"
    )
    with pytest.raises(FetchRefused):
        await vetted_address(target, allow_loopback=False, resolver=resolver_answering(["127.0.0.1"]))


async def test_localhost_resolving_somewhere_else_is_refused_even_with_the_setting() -> None:
    target = parse_target("http://localhost:8080/c.json")
    with pytest.raises(FetchRefused):
        await vetted_address(target, allow_loopback=True, resolver=resolver_answering(["93.184.216.34"]))


async def test_an_unresolvable_name_is_refused() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(FetchRefused, match="resolved"):
        await vetted_address(
            parse_target("https://nowhere.example/c.json"), allow_loopback=False, resolver=failing
        )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("10.1.2.3", False),
        ("::ffff:93.184.216.34", True),
        ("::ffff:127.0.0.1", False),
        ("2002:0a00:0001::", False),  # 6to4 around 10.0.0.1
        ("2001:0000:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo to 10.0.0.1
        ("ff02::1", False),
        ("255.255.255.255", False),
    ],
)
def test_public_means_globally_routable_unicast_even_inside_ipv6_wrappers(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/c",
        "https://0x7f.1/c",
        "https://127.1/c",
        "https://[::1%25eth0]/c",
        "https://a..b/c",
        "https://-a.example/c",
    ],
)
def test_ambiguous_host_spellings_are_refused(url: str) -> None:
    with pytest.raises(FetchRefused):
        parse_target(url)
