"""The SSRF guard: which URLs may be registered and which addresses may be connected to.

The address check runs at connect time (in the HTTP client's socket factory, on the address
actually about to be dialled), so a name that resolved to a public address when the endpoint
was registered and to an internal one later (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services: refused even when private networks are allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(OSError):
    """The receiver's address is internal; the message names the address class only."""


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return None


def address_class(address: IPAddress) -> str | None:
    """Why `address` is internal ("loopback", "private", …), or None for a public address."""
    embedded = _embedded_v4(address)
    if embedded is not None:
        return address_class(embedded)
    if address in METADATA_ADDRESSES:
        return "cloud-metadata"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("cgnat", isinstance(address, ipaddress.IPv4Address) and address in CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        # Deprecated site-local (fec0::/10): neither is_private nor is_global says so.
        ("private", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("reserved", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


# Classes a deployment may open up for its own receivers (tests, `hub demo`).
PRIVATE_CLASSES = frozenset({"loopback", "private", "link-local", "cgnat", "reserved"})


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_private_networks: bool = False

    def refusal(self, address: IPAddress) -> str | None:
        kind = address_class(address)
        if kind is None or (self.allow_private_networks and kind in PRIVATE_CLASSES):
            return None
        return kind

    def check(self, host: str) -> None:
        address = ipaddress.ip_address(host.split("%", 1)[0])
        kind = self.refusal(address)
        if kind is not None:
            raise BlockedAddress(f"refused to connect to a {kind} address")

    def socket_factory(self, addr_info: Any) -> socket.socket:
        """For aiohttp's `TCPConnector(socket_factory=...)`: check, then make the socket."""
        family, type_, proto, _, sockaddr = addr_info
        self.check(str(sockaddr[0]))
        return socket.socket(family=family, type=type_, proto=proto)


def url_problem(url: str, *, http_hosts: frozenset[str], policy: AddressPolicy) -> str | None:
    """Why `url` cannot be an endpoint (for a 400 naming `url`), or None when it can."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in {"https", "http"} or not host:
        return "must be an https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    if parts.scheme == "http" and host not in http_hosts:
        return "must use https (the operator allows http only for listed hosts)"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            address = ipaddress.ip_address("127.0.0.1")
        elif not _is_resolvable(url):
            return "has a host name that is not valid (empty or overlong label)"
        else:
            return None  # a name: checked on every connection, when it is resolved
    kind = policy.refusal(address)
    return f"points at a {kind} address" if kind is not None else None


def _is_resolvable(url: str) -> bool:
    """Whether the resolver can take the host as the HTTP client hands it over (IDNA
    encoded, each label 1 to 63 characters); else every send would fail."""
    try:
        (URL(url).raw_host or "").encode("idna")
    except ValueError:  # UnicodeError included
        return False
    return True
