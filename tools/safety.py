"""URL safety for fetches: resolve the host once, refuse non-public addresses, pin the connection to the checked IP.

The fetcher connects to the address this module returns, never to a second resolution, so DNS rebinding between
check and connect cannot redirect it. IP literals are parsed the way ``inet_aton`` reads them (decimal ``2130706433``,
hex ``0x7f000001``, octal ``0177.0.0.1``, short ``127.1``) so no spelling of loopback slips through as a "name".
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tools.errors import UnsafeURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Metadata endpoints that some clouds serve from addresses a generic "is it global?" test might miss.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0].split("%", 1)[0] for info in infos]


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """The inet_aton reading: 1-4 dot-separated parts, each decimal, 0x-hex or 0-octal; the last fills the rest."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    values = []
    for part in parts:
        p = part.lower()
        try:
            values.append(
                int(p, 16) if p.startswith("0x") else int(p, 8) if len(p) > 1 and p[0] == "0" else int(p)
            )
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    return ipaddress.IPv4Address(number * 256 ** (4 - len(head)) + last)


def parse_ip(host: str) -> IPAddress | None:
    """An IP literal in any accepted spelling, or None for a name."""
    h = host.strip("[]")
    if "%" in h and ":" in h:  # a zone id only makes sense for link-local addresses, which are refused anyway
        raise UnsafeURLError(f"IPv6 zone identifiers are not allowed: {host!r}")
    if "%" in h:  # a client may decode %31%32%37.0.0.1 to 127.0.0.1: no spelling games with the host
        raise UnsafeURLError(f"percent-encoded characters are not allowed in a host name: {host!r}")
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError as e:
            raise UnsafeURLError(f"malformed IPv6 address {host!r}") from e
    return parse_ipv4_loose(h)


def blocked_reason(ip: IPAddress) -> str | None:
    """Why this address must not be fetched, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in (ip.ipv4_mapped, ip.sixtofour, (ip.teredo or (None, None))[1]):
            if embedded is not None and (reason := blocked_reason(embedded)):
                return f"{reason} (embedded in {ip})"
        nat64 = ip in ipaddress.IPv6Network("64:ff9b::/96")  # NAT64 maps the low 32 bits onto IPv4
        if nat64 and (reason := blocked_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))):
            return f"{reason} (NAT64 {ip})"
    checks = [
        (ip in METADATA_ADDRESSES, "a cloud metadata address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    ]
    return next((f"{ip} is {why}" for hit, why in checks if hit), None)


@dataclass(frozen=True)
class PinnedURL:
    """A checked URL and the one address the fetch will connect to."""

    url: str
    scheme: str
    host: str
    port: int
    ip: str

    @property
    def connect_url(self) -> str:
        """The URL with its host replaced by the pinned address (the Host header keeps the name)."""
        parts = urlsplit(self.url)
        netloc = f"[{self.ip}]" if ":" in self.ip else self.ip
        netloc += f":{self.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if DEFAULT_PORTS[self.scheme] == self.port else f"{name}:{self.port}"


@dataclass(frozen=True)
class UrlPolicy:
    """What a fetch may reach. ``allow`` lists CIDR networks and host names (``*.corp.example`` for a suffix) that
    bypass the public-address rule: for tests on 127.0.0.1 and for intranets. Empty by default."""

    allow: Sequence[str] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)
    schemes: frozenset[str] = frozenset({"http", "https"})

    def _allowed_host(self, host: str) -> bool:
        for entry in self.allow:
            e = entry.lower().rstrip(".")
            if e == host or (e.startswith("*.") and host.endswith(e[1:])):
                return True
        return False

    def _allowed_ip(self, ip: IPAddress) -> bool:
        for entry in self.allow:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a host name entry
        return False

    def check(self, url: str) -> PinnedURL:
        """Resolve once and return the pinned target, or raise UnsafeURLError naming the reason."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise UnsafeURLError(
                f"scheme {parts.scheme!r} is not allowed (allowed: {sorted(self.schemes)}): {url}"
            )
        try:
            raw_host, port = parts.hostname, parts.port or DEFAULT_PORTS[scheme]
        except ValueError as e:
            raise UnsafeURLError(f"malformed URL {url!r}: {e}") from e
        if not raw_host:
            raise UnsafeURLError(f"URL has no host: {url!r}")
        host = raw_host.lower().rstrip(".")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as e:
                raise UnsafeURLError(f"host {raw_host!r} is not a valid IDN name: {url}") from e
        if host in METADATA_HOSTS and not self._allowed_host(host):
            raise UnsafeURLError(f"{host} is a cloud metadata host: {url}")
        literal = parse_ip(host)
        addresses = [str(literal)] if literal is not None else self._resolve(host, port, url)
        by_name = literal is None and self._allowed_host(host)
        for address in addresses:
            ip = ipaddress.ip_address(address)
            reason = blocked_reason(ip)
            if reason and not by_name and not self._allowed_ip(ip):
                via = "" if literal is not None else f" ({host} resolved to {ip})"
                raise UnsafeURLError(f"refusing {url}: {reason}{via}")
        return PinnedURL(url=url, scheme=scheme, host=host, port=port, ip=addresses[0])

    def _resolve(self, host: str, port: int, url: str) -> list[str]:
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as e:
            raise UnsafeURLError(f"cannot resolve {host!r} for {url}: {e}") from e
        if not addresses:
            raise UnsafeURLError(f"{host!r} resolved to no addresses: {url}")
        return addresses


def is_loopback(host: str) -> bool:
    """A bind address that only this machine reaches ("localhost" or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
