"""Which network addresses a result download may reach: the SSRF rules, as pure functions.

A download names a host; this module turns the host into addresses (IP literals in every form a
resolver accepts, or a DNS lookup through ``resolve_name``), says what kind of address each is
(``classify``), and whether the ``NetPolicy`` lets a hop go there (``NetPolicy.refusal``):

- link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254,
  100.100.100.200, ...; also inside IPv4-mapped, -compatible, NAT64 and 6to4 IPv6 forms) are
  refused always, unless allowlisted;
- a redirect reached through a public address may not lead into loopback, private, link-local,
  unique-local, multicast, unspecified or reserved space, unless allowlisted;
- a URL given directly may reach private space when ``private_urls`` is ``"allow"`` (the default:
  self-hosted workers and ComfyUI on the LAN are common), and may not when it is ``"deny"``.

The caller then connects only to the addresses it checked, so a DNS answer that changes between
the check and the connection (rebinding) cannot redirect it.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal, TypeAlias
from urllib.parse import unquote

from .exceptions import ConfigurationError

__all__ = [
    "AddressKind",
    "IPAddress",
    "NetPolicy",
    "addresses_for",
    "classify",
    "parse_ip_host",
    "resolve_name",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address
PRIVATE_URLS_ENV = "GENSTORE_PRIVATE_URLS"


class AddressKind(enum.Enum):
    """What an address is, from the point of view of a server fetching a URL."""

    PUBLIC = "public"
    PRIVATE = "private"
    RESERVED = "reserved"
    MULTICAST = "multicast"
    LOOPBACK = "loopback"
    UNSPECIFIED = "unspecified"
    LINK_LOCAL = "link-local"
    METADATA = "cloud-metadata"


# Most severe last: an IPv6 address carrying an IPv4 one counts as the worse of the two.
_SEVERITY = {kind: rank for rank, kind in enumerate(AddressKind)}
ALWAYS_REFUSED = frozenset({AddressKind.LINK_LOCAL, AddressKind.METADATA})

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud instance metadata
        "192.0.0.192",  # Oracle Cloud legacy instance metadata
        "168.63.129.16",  # Azure WireServer (platform agent and health endpoint)
    )
)
"""Addresses of cloud instance-metadata services, refused like link-local space."""


def _nets(kind: AddressKind, *cidrs: str) -> list[tuple[IPv4Network | IPv6Network, AddressKind]]:
    return [(ipaddress.ip_network(cidr), kind) for cidr in cidrs]


# Spelled out rather than taken from ``ipaddress``'s is_global/is_private, whose answers change
# between Python versions (192.0.0.192 and fec0::/10 are "global" on 3.11).
_V4_SPECIAL = [
    *_nets(AddressKind.UNSPECIFIED, "0.0.0.0/8"),
    *_nets(AddressKind.LOOPBACK, "127.0.0.0/8"),
    *_nets(AddressKind.LINK_LOCAL, "169.254.0.0/16"),
    *_nets(AddressKind.PRIVATE, "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16"),
    *_nets(AddressKind.MULTICAST, "224.0.0.0/4"),
    *_nets(
        AddressKind.RESERVED,
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1..3)
        "198.51.100.0/24",
        "203.0.113.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    ),
]
_V6_SPECIAL = [
    *_nets(AddressKind.UNSPECIFIED, "::/128"),
    *_nets(AddressKind.LOOPBACK, "::1/128"),
    *_nets(AddressKind.LINK_LOCAL, "fe80::/10"),
    *_nets(AddressKind.PRIVATE, "fc00::/7", "fec0::/10", "64:ff9b:1::/48"),
    *_nets(AddressKind.MULTICAST, "ff00::/8"),
    *_nets(
        AddressKind.RESERVED, "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16"
    ),
]
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address | None, bool]:
    """The IPv4 address an IPv6 one carries, and whether it *is* that address (mapped, compatible,
    NAT64) rather than merely naming it (6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, True
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF), True
    if address.sixtofour is not None:
        return address.sixtofour, False
    if address.teredo is not None:
        return address.teredo[1], False
    return None, False


def _own_kind(address: IPAddress) -> AddressKind:
    special = _V4_SPECIAL if isinstance(address, IPv4Address) else _V6_SPECIAL
    for network, kind in special:
        if address in network:
            return kind
    if isinstance(address, IPv6Address) and address not in _V6_GLOBAL_UNICAST:
        return AddressKind.RESERVED  # outside 2000::/3 nothing is assigned for unicast
    return AddressKind.PUBLIC


def classify(address: IPAddress) -> AddressKind:
    """The kind of ``address``; an IPv6 address that carries an IPv4 one (``::ffff:a.b.c.d``,
    ``64:ff9b::a.b.c.d``, 6to4, Teredo) is judged by what it carries as well."""
    if isinstance(address, IPv6Address) and address.scope_id:
        address = IPv6Address(address.compressed.split("%", 1)[0])
    if address in METADATA_ADDRESSES:
        return AddressKind.METADATA
    if isinstance(address, IPv6Address):
        inner, is_same = _embedded_ipv4(address)
        if inner is not None:
            inner_kind = classify(inner)
            if is_same:
                return inner_kind
            return max(inner_kind, _own_kind(address), key=_SEVERITY.__getitem__)
    return _own_kind(address)


_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def _ipv4_number(part: str) -> int | None:
    """One part of an inet_aton() address: decimal, 0x hex or leading-0 octal."""
    if not _NUMERIC_PART.fullmatch(part):
        return None
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8) if all(c in "01234567" for c in part) else None
    return int(part)


def _parse_ipv4_loose(host: str) -> IPv4Address | None:
    """The IPv4 address that resolvers (inet_aton, WHATWG URLs) read in ``host``: 2130706433,
    0x7f.1, 0177.0.0.1 and 127.1 all mean 127.0.0.1. None when ``host`` is not of that form."""
    parts = host.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *head, last = [number for number in numbers if number is not None]
    if any(number > 255 for number in head) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(head):
        value |= number << (8 * (3 - index))
    return IPv4Address(value)


def looks_numeric(host: str) -> bool:
    """Whether the last label of ``host`` is a number, as in an IPv4 address (WHATWG's rule:
    such a host is an address or invalid, never a name to look up)."""
    last = host.removesuffix(".").rsplit(".", 1)[-1]
    return bool(last) and _NUMERIC_PART.fullmatch(last) is not None


def parse_ip_host(host: str) -> IPAddress | None:
    """The address written in a URL host (IPv6 with or without brackets and zone, IPv4 in any
    numeric form), or None for a host name."""
    text = unquote(host).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return IPv6Address(text)
        except ValueError:
            return None
    return _parse_ipv4_loose(text)


def resolve_name(host: str, port: int, timeout: float) -> list[IPAddress]:
    """The addresses ``host`` resolves to (``OSError`` when it does not, ``TimeoutError`` past
    ``timeout`` seconds). Replaced by tests, which must never resolve for real."""
    found: list[IPAddress] = []
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            for info in infos:
                address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                if address not in found:
                    found.append(address)
        except BaseException as exc:
            failure.append(exc)

    # getaddrinfo has no timeout of its own: a daemon thread keeps the caller's deadline.
    thread = threading.Thread(target=lookup, name="genstore-resolve", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        raise TimeoutError(f"resolving {host} took longer than {timeout:.1f} s")
    if failure:
        raise failure[0]
    if not found:
        raise OSError(f"{host} has no address")
    return found


def addresses_for(host: str, port: int, timeout: float) -> list[IPAddress]:
    """Every address a connection to ``host`` could reach: the literal itself, or what
    ``resolve_name`` answers. ``ValueError`` for a numeric-looking host that is no address."""
    literal = parse_ip_host(host)
    if literal is not None:
        return [literal]
    if ":" in host or looks_numeric(host):
        raise ValueError("the URL's host looks like an address but is not a valid one")
    return resolve_name(host, port, timeout)


def _host_key(host: str) -> str:
    return unquote(host).strip("[]").removesuffix(".").lower()


@dataclass(frozen=True)
class NetPolicy:
    """Where downloads may go. See the module documentation for the rules."""

    private_urls: Literal["allow", "deny"] = "allow"
    """``"deny"``: a URL given directly may not reach non-public space either."""
    allow_hosts: frozenset[str] = frozenset()
    """Host names (lower case, no trailing dot) allowed whatever they resolve to."""
    allow_networks: tuple[IPv4Network | IPv6Network, ...] = ()
    """Addresses and networks allowed whatever kind they are."""

    @classmethod
    def from_options(
        cls,
        private_urls: str | None,
        allowlist: Iterable[str] = (),
        environ: Mapping[str, str] = os.environ,
    ) -> NetPolicy:
        """The policy of a store: ``private_urls`` (None: ``GENSTORE_PRIVATE_URLS``, else
        ``"allow"``) and an allowlist of host names, addresses and CIDR networks.
        ``ConfigurationError`` for anything else."""
        mode = private_urls if private_urls is not None else environ.get(PRIVATE_URLS_ENV)
        mode = (mode or "allow").strip().lower()
        if mode not in ("allow", "deny"):
            raise ConfigurationError(
                f"private_urls (or {PRIVATE_URLS_ENV}) must be 'allow' or 'deny', not {mode!r}"
            )
        hosts: set[str] = set()
        networks: list[IPv4Network | IPv6Network] = []
        for entry in allowlist:
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            literal = parse_ip_host(text)
            if literal is not None:
                networks.append(ipaddress.ip_network(literal))
            elif not text or "/" in text or ":" in text or looks_numeric(text):
                raise ConfigurationError(f"url_allowlist entry {entry!r} is not a host or network")
            else:
                hosts.add(_host_key(text))
        return cls("allow" if mode == "allow" else "deny", frozenset(hosts), tuple(networks))

    def allowlisted(self, host: str, address: IPAddress) -> bool:
        """Whether the allowlist names ``host`` or contains ``address``."""
        if _host_key(host) in self.allow_hosts:
            return True
        return any(
            address.version == network.version and address in network
            for network in self.allow_networks
        )

    def refusal(
        self, host: str, addresses: Sequence[IPAddress], *, after_public: bool
    ) -> str | None:
        """Why a hop to ``host`` (resolved to ``addresses``, every one checked) is refused, or None.

        ``after_public``: an earlier hop of this download reached a public address, so this hop is
        a redirect a public server chose and may only stay in public space.
        """
        for address in addresses:
            if self.allowlisted(host, address):
                continue
            kind = classify(address)
            shown = f"{_shown_host(host)} ({address}, {kind.value})"
            if kind in ALWAYS_REFUSED:
                return f"{shown}: link-local and cloud-metadata addresses are refused unless in url_allowlist"
            if kind is AddressKind.PUBLIC:
                continue
            if after_public:
                return (
                    f"{shown}: a redirect from a public address may not lead to {kind.value} space"
                )
            if self.private_urls == "deny":
                return f"{shown}: non-public addresses are refused (private_urls='deny')"
        return None


def _shown_host(host: str) -> str:
    return host if len(host) <= 100 else host[:97] + "..."
