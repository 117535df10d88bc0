"""Where a webhook may go: the host must be on the allowlist and every address it is sent to must be public
(or in an explicitly allowed network). The check runs on the resolved addresses and the connection is opened to
the very address that was checked, so DNS cannot change the answer in between (no TOCTOU, no rebinding)."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from jobfleet.core.errors import ConfigError, PermanentError, TransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(raw: str, name: str) -> tuple[IPNetwork, ...]:
    found = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP network like 10.0.0.0/8 or 127.0.0.1/32") from None
    return tuple(found)


@dataclass(frozen=True)
class DestinationPolicy:
    """Which webhook destinations are allowed (built from JOBFLEET_WEBHOOK_ALLOWED_HOSTS/_NETWORKS)."""

    hosts: tuple[str, ...] = ("*",)  # exact names, "*.suffix" wildcards, or "*" for any host
    host_networks: tuple[IPNetwork, ...] = ()  # CIDRs listed among the allowed hosts (literal-address URLs)
    allowed_networks: tuple[IPNetwork, ...] = ()  # non-public networks that may be called anyway

    @classmethod
    def from_settings(cls, allowed_hosts: str, allowed_networks: str) -> DestinationPolicy:
        """Parse the two comma-separated settings; ConfigError names the bad entry."""
        hosts, cidrs = [], []
        for item in (part.strip().lower() for part in allowed_hosts.split(",")):
            if not item:
                continue
            try:
                cidrs.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.append(item.rstrip("."))
        return cls(
            hosts=tuple(hosts),
            host_networks=tuple(cidrs),
            allowed_networks=_networks(allowed_networks, "JOBFLEET_WEBHOOK_ALLOWED_NETWORKS"),
        )

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (a name or a literal address) is on the allowlist."""
        host = host.lower().rstrip(".")
        try:
            address = _plain(ipaddress.ip_address(host))
        except ValueError:
            address = None
        if address is not None and any(address in net for net in self.host_networks):
            return True
        for pattern in self.hosts:
            if pattern in ("*", host):
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
        return False

    def address_allowed(self, address: IPAddress) -> bool:
        """Whether jobfleet may connect to ``address``: public, or inside an explicitly allowed network."""
        address = _plain(address)
        if any(address in net for net in self.allowed_networks):
            return True
        # is_global is False for loopback, private, link-local (169.254.169.254, the cloud metadata service),
        # shared (100.64/10), reserved, unspecified and documentation ranges; multicast is never a webhook.
        return address.is_global and not address.is_multicast


def _plain(address: IPAddress) -> IPAddress:
    # ::ffff:127.0.0.1 is 127.0.0.1 to the kernel: judge the IPv4 address it maps to.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Destination:
    """A checked webhook target: connect to ``address`` and present ``host`` (Host header, TLS SNI and cert)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def resolve(url: str, policy: DestinationPolicy) -> Destination:
    """Check ``url`` against ``policy`` after DNS resolution; raise PermanentError when refused,
    TransientError when the name does not resolve right now."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not host:
        raise PermanentError(f"webhook URL {url!r} refused: only http(s) URLs with a host are called")
    if not policy.host_allowed(host):
        raise PermanentError(
            f"webhook destination {host!r} refused: not on JOBFLEET_WEBHOOK_ALLOWED_HOSTS; ask an operator to add it"
        )
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TransientError(f"webhook host {host!r} does not resolve: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    allowed = [a for a in addresses if policy.address_allowed(a)]
    if not allowed:
        shown = ", ".join(sorted({str(a) for a in addresses}))
        raise PermanentError(
            f"webhook destination {host!r} refused: it resolves to {shown}, a loopback, private, link-local or "
            "metadata address; allow the network in JOBFLEET_WEBHOOK_ALLOWED_NETWORKS if that is intended"
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Destination(scheme, host, port, str(allowed[0]), path)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a fixed, already checked address."""

    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout)
        self._address = destination.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a fixed, already checked address; SNI and certificate check use the host name."""

    def __init__(self, destination: Destination, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout, context=context)
        self._address = destination.address
        self._context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def connection(
    destination: Destination, *, timeout: float, context: ssl.SSLContext | None = None
) -> http.client.HTTPConnection:
    """An unopened connection pinned to the checked address (http.client ignores proxy variables: no detour)."""
    if destination.scheme == "https":
        return _PinnedHTTPSConnection(destination, timeout, context or ssl.create_default_context())
    return _PinnedHTTPConnection(destination, timeout)
