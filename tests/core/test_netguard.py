"""The SSRF rules: address kinds, numeric host forms, and the download policy (no network)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from ipaddress import IPv4Address, IPv6Address

import httpx
import pytest
from genstore import _netguard
from genstore._netguard import AddressKind, NetPolicy, addresses_for, classify, parse_ip_host
from genstore.exceptions import ConfigurationError
from hypothesis import given
from hypothesis import strategies as st

K = AddressKind

# Expected kinds from the IANA special-purpose registries, written out by hand.
KINDS = [
    ("8.8.8.8", K.PUBLIC),
    ("1.1.1.1", K.PUBLIC),
    ("127.0.0.1", K.LOOPBACK),
    ("127.255.0.9", K.LOOPBACK),
    ("10.1.2.3", K.PRIVATE),
    ("172.16.0.1", K.PRIVATE),
    ("172.31.255.255", K.PRIVATE),
    ("172.32.0.1", K.PUBLIC),
    ("192.168.1.1", K.PRIVATE),
    ("100.64.0.1", K.PRIVATE),
    ("169.254.169.254", K.METADATA),
    ("169.254.170.2", K.METADATA),
    ("169.254.1.1", K.LINK_LOCAL),
    ("100.100.100.200", K.METADATA),
    ("192.0.0.192", K.METADATA),
    ("168.63.129.16", K.METADATA),
    ("0.0.0.0", K.UNSPECIFIED),
    ("0.1.2.3", K.UNSPECIFIED),
    ("224.0.0.1", K.MULTICAST),
    ("239.255.255.250", K.MULTICAST),
    ("255.255.255.255", K.RESERVED),
    ("240.0.0.1", K.RESERVED),
    ("192.0.2.1", K.RESERVED),
    ("198.18.0.1", K.RESERVED),
    ("::1", K.LOOPBACK),
    ("::", K.UNSPECIFIED),
    ("fe80::1", K.LINK_LOCAL),
    ("fe80::1%eth0", K.LINK_LOCAL),
    ("febf::1", K.LINK_LOCAL),
    ("fd00:ec2::254", K.METADATA),
    ("fd12:3456::1", K.PRIVATE),
    ("fc00::1", K.PRIVATE),
    ("fec0::1", K.PRIVATE),
    ("ff02::1", K.MULTICAST),
    ("2001:db8::1", K.RESERVED),
    ("2606:4700:4700::1111", K.PUBLIC),
    ("2a00:1450:4001::200e", K.PUBLIC),
    ("::ffff:169.254.169.254", K.METADATA),
    ("::ffff:127.0.0.1", K.LOOPBACK),
    ("::ffff:10.0.0.1", K.PRIVATE),
    ("::ffff:8.8.8.8", K.PUBLIC),
    ("::169.254.169.254", K.METADATA),
    ("::127.0.0.1", K.LOOPBACK),
    ("64:ff9b::169.254.169.254", K.METADATA),
    ("64:ff9b::10.0.0.1", K.PRIVATE),
    ("64:ff9b::8.8.8.8", K.PUBLIC),
    ("2002:a9fe:a9fe::1", K.METADATA),  # 6to4 naming the metadata address
    ("2002:0a00:0001::1", K.PRIVATE),
    ("4000::1", K.RESERVED),  # outside 2000::/3
]


@pytest.mark.parametrize(("text", "kind"), KINDS)
def test_classify_knows_the_special_ranges(text: str, kind: AddressKind) -> None:
    assert classify(ipaddress.ip_address(text)) is kind


NUMERIC_HOSTS = [
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0177.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("2852039166", "169.254.169.254"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("169.16689662", "169.254.169.254"),
    ("[::1]", "::1"),
    ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
    ("[fe80::1%25eth0]", "fe80::1%eth0"),
]


@pytest.mark.parametrize(("host", "address"), NUMERIC_HOSTS)
def test_numeric_host_forms_are_read_as_resolvers_read_them(host: str, address: str) -> None:
    assert parse_ip_host(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "08.0.0.1", "0x1g", ""]
)
def test_names_and_invalid_numbers_are_not_addresses(host: str) -> None:
    assert parse_ip_host(host) is None


def _forms(value: int) -> list[str]:
    """Ways resolvers accept to write the IPv4 address ``value``."""
    b = value.to_bytes(4, "big")
    return [
        str(value),
        hex(value),
        "0" + oct(value)[2:],
        ".".join(str(x) for x in b),
        ".".join(hex(x) for x in b),
        ".".join("0" + oct(x)[2:] for x in b),
        f"{b[0]}.{int.from_bytes(b[1:], 'big')}",
        f"{b[0]}.{b[1]}.{int.from_bytes(b[2:], 'big')}",
        f"{hex(b[0])}.{'0' + oct(int.from_bytes(b[1:], 'big'))[2:]}",
    ]


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_numeric_form_of_an_ipv4_address_reads_back_as_it(value: int) -> None:
    for form in _forms(value):
        assert parse_ip_host(form) == IPv4Address(value), form


@given(st.text(alphabet="0123456789xXabcdef.", min_size=1, max_size=14))
def test_ipv4_parsing_agrees_with_inet_aton(text: str) -> None:
    # inet_aton is the C library's reading; ours also takes a trailing dot and a bare "0x"
    # (as WHATWG URL parsers do), so it is compared only where those do not occur.
    try:
        expected: IPv4Address | None = IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    if text.endswith(".") or any(part.lower() == "0x" for part in text.split(".")):
        return
    assert parse_ip_host(text) == expected


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address(value: int) -> None:
    inner = IPv4Address(value)
    for wrapped in (
        IPv6Address(f"::ffff:{inner}"),
        IPv6Address(int(IPv6Address("64:ff9b::")) | value),
    ):
        assert classify(wrapped) is classify(inner), wrapped


@given(st.ip_addresses())
def test_what_python_calls_special_is_never_public(address: IPv4Address | IPv6Address) -> None:
    carries_ipv4 = isinstance(address, IPv6Address) and (
        address.ipv4_mapped is not None
        or address in ipaddress.ip_network("::/96")
        or address in ipaddress.ip_network("64:ff9b::/96")
    )
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    if special and not carries_ipv4:
        assert classify(address) is not K.PUBLIC


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_urls_with_numeric_hosts_reach_parse_ip_host_intact(value: int) -> None:
    # httpx keeps these hosts as written; what we check is what a connection would reach.
    for form in _forms(value):
        try:
            url = httpx.URL(f"http://{form}/")
        except httpx.InvalidURL:
            continue  # refused by the URL parser: never fetched
        assert parse_ip_host(url.raw_host.decode("ascii")) == IPv4Address(value)


# --- policy ---------------------------------------------------------------------------------

PUBLIC = [ipaddress.ip_address("93.184.215.14")]
LAN = [ipaddress.ip_address("192.168.1.20")]
LOOP = [ipaddress.ip_address("127.0.0.1")]
META = [ipaddress.ip_address("169.254.169.254")]
META6 = [ipaddress.ip_address("fd00:ec2::254")]


def test_direct_urls_may_reach_the_lan_by_default() -> None:
    policy = NetPolicy()
    assert policy.refusal("comfy.lan", LAN, after_public=False) is None
    assert policy.refusal("localhost", LOOP, after_public=False) is None
    assert policy.refusal("example.com", PUBLIC, after_public=False) is None


@pytest.mark.parametrize("addresses", [META, META6, [ipaddress.ip_address("fe80::1")]])
@pytest.mark.parametrize("after_public", [False, True])
def test_metadata_and_link_local_are_refused_always(
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], after_public: bool
) -> None:
    reason = NetPolicy().refusal("metadata.test", addresses, after_public=after_public)
    assert reason is not None
    assert "metadata.test" in reason and "unless in url_allowlist" in reason


def test_a_redirect_after_a_public_hop_may_not_enter_private_space() -> None:
    policy = NetPolicy()
    for addresses in (LAN, LOOP):
        reason = policy.refusal("inside.test", addresses, after_public=True)
        assert reason is not None and "redirect from a public address" in reason
    assert policy.refusal("cdn.test", PUBLIC, after_public=True) is None


def test_deny_refuses_private_direct_urls_and_checks_every_address() -> None:
    policy = NetPolicy(private_urls="deny")
    assert policy.refusal("example.com", PUBLIC, after_public=False) is None
    reason = policy.refusal("mixed.test", PUBLIC + LAN, after_public=False)
    assert reason is not None and "192.168.1.20" in reason and "private_urls='deny'" in reason


def test_the_allowlist_lets_named_hosts_and_networks_through() -> None:
    policy = NetPolicy.from_options("deny", ["Comfy.LAN.", "10.0.0.0/8", "169.254.169.254"], {})
    assert policy.refusal("comfy.lan", LAN, after_public=True) is None
    assert policy.refusal("x.test", [ipaddress.ip_address("10.2.3.4")], after_public=True) is None
    assert policy.refusal("x.test", META, after_public=False) is None
    assert policy.refusal("other.lan", LAN, after_public=False) is not None


def test_private_urls_comes_from_the_environment_when_not_given() -> None:
    assert (
        NetPolicy.from_options(None, (), {"GENSTORE_PRIVATE_URLS": "deny"}).private_urls == "deny"
    )
    assert NetPolicy.from_options(None, (), {}).private_urls == "allow"
    assert NetPolicy.from_options("allow", (), {"GENSTORE_PRIVATE_URLS": "deny"}).private_urls == (
        "allow"
    )


@pytest.mark.parametrize(
    ("mode", "allowlist"), [("maybe", ()), ("allow", ("10.0.0.0/33",)), ("allow", ("",))]
)
def test_bad_settings_are_configuration_errors(mode: str, allowlist: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError):
        NetPolicy.from_options(mode, allowlist, {})


def test_literal_hosts_never_reach_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(host: str, port: int, timeout: float) -> list[IPv4Address | IPv6Address]:
        raise AssertionError(f"resolved {host}")

    monkeypatch.setattr(_netguard, "resolve_name", no_dns)
    assert addresses_for("0x7f.1", 80, 1.0) == [IPv4Address("127.0.0.1")]
    with pytest.raises(ValueError, match="not a valid one"):
        addresses_for("1.2.3.999", 80, 1.0)


def test_names_go_through_resolve_name(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, int]] = []

    def fake(host: str, port: int, timeout: float) -> list[IPv4Address | IPv6Address]:
        seen.append((host, port))
        return list(META)

    monkeypatch.setattr(_netguard, "resolve_name", fake)
    assert addresses_for("metadata.test", 8080, 1.0) == META
    assert seen == [("metadata.test", 8080)]


def test_resolve_name_reads_numeric_hosts_without_dns() -> None:
    # getaddrinfo answers numeric hosts itself: no packet leaves the machine.
    assert _netguard.resolve_name("127.0.0.1", 80, 5.0) == [IPv4Address("127.0.0.1")]


def test_resolve_name_gives_up_at_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(*args: object, **kwargs: object) -> list[object]:
        release.wait(10)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            _netguard.resolve_name("slow.test", 80, 0.2)
        assert time.monotonic() - started < 2
    finally:
        release.set()
