"""Where webhooks may go: the guard against server-side request forgery.

A webhook URL is an address chosen by whoever registers it, and the hub would call it from inside
its network. So a host that is, or resolves to, a private, loopback, link-local, CGNAT, multicast,
reserved or cloud-metadata address is refused unless an operator allows its network
(`CROSSDOCK_WEBHOOK_ALLOW_PRIVATE`). The check runs at registration and again for every connection:
the name is resolved once, every address it resolves to is checked, and the connection goes to the
checked address (the name stays in the Host header, in TLS SNI and in certificate checks), so a
name that resolves differently the second time (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
SCHEMES = ("http", "https")
SETTING = "CROSSDOCK_WEBHOOK_ALLOW_PRIVATE"


class Refused(ValueError):
    """The URL may not be called; the message says why, for the person who registered it."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: connect to `address`, speak to `hostname`."""

    url: httpx.URL
    hostname: str  # ASCII (IDNA) host name, or the IP literal
    address: IPAddress


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """CIDRs separated by commas or spaces (a bare address is a /32 or /128)."""
    parts = text.replace(",", " ").split()
    try:
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)
    except ValueError as exc:
        raise ValueError(f"{SETTING}: {exc}") from None


def parse_url(url: str) -> httpx.URL:
    """The URL if it is an absolute http(s) URL with a host; Refused otherwise."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    if parsed.scheme not in SCHEMES:
        raise Refused(f"the scheme must be http or https, not {parsed.scheme or 'missing'!r}")
    if not parsed.raw_host:
        raise Refused("the URL has no host")
    if parsed.fragment:
        raise Refused("a webhook URL has no #fragment")
    return parsed


class AddressPolicy:
    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed)

    @classmethod
    def from_setting(cls, text: str) -> AddressPolicy:
        return _policy(text)

    def refusal(self, address: IPAddress, hostname: str | None = None) -> str | None:
        """Why `address` (that `hostname` resolved to, if given) may not be called, or None if it may."""
        target: IPAddress = address
        if isinstance(address, ipaddress.IPv6Address):
            # IPv4 inside IPv6 (mapped, 6to4) reaches the IPv4 address: judge that one.
            target = address.ipv4_mapped or address.sixtofour or address
        if any(target in net for net in self.allowed if net.version == target.version):
            return None
        reason = _kind(target)
        if reason is None:
            return None
        shown = str(address) if target is address else f"{address} (that is {target})"
        what = f"{shown} is {reason}" if hostname is None else f"{hostname} resolves to {shown}, which is {reason}"
        return f"{what}; webhooks may not call it unless {SETTING} allows its network"

    async def check(self, url: str | httpx.URL) -> Target:
        """Resolves the URL's host and checks every address; Refused if any may not be called."""
        parsed = url if isinstance(url, httpx.URL) else parse_url(url)
        hostname = parsed.raw_host.decode("ascii")
        literal = _literal(hostname)
        if literal is not None:
            addresses = [literal]
        else:
            addresses = await resolve(hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
        for address in addresses:
            if why := self.refusal(address, None if literal is not None else hostname):
                raise Refused(why)
        return Target(parsed, hostname, addresses[0])


@lru_cache(maxsize=16)
def _policy(text: str) -> AddressPolicy:
    return AddressPolicy(parse_networks(text))


def _literal(hostname: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        return None


async def resolve(hostname: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{hostname} does not resolve: {exc}") from None
    # A scoped IPv6 address ("fe80::1%eth0") comes back with its zone: the address is what is checked.
    found = dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    if not found:
        raise Refused(f"{hostname} does not resolve")
    return list(found)


def _kind(address: IPAddress) -> str | None:
    if address in METADATA:
        return "a cloud metadata address"
    if address in UNIQUE_LOCAL:
        return "a unique-local address"
    if address in CGNAT:
        return "a carrier-grade NAT address"
    for kind, flag in (
        ("a loopback address", address.is_loopback),
        ("an unspecified address", address.is_unspecified),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
        ("not a public address", not address.is_global),
    ):
        if flag:
            return kind
    return None


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host name only to the address the policy last checked for it, never to what the
    name resolves to at connect time; a name never checked is not connected at all."""

    KEEP = 1024  # names remembered; the oldest is forgotten first (its next request checks it again)

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.pins: dict[str, IPAddress] = {}

    def pin(self, target: Target) -> None:
        self.pins.pop(target.hostname, None)
        self.pins[target.hostname] = target.address
        while len(self.pins) > self.KEEP:
            del self.pins[next(iter(self.pins))]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = self.pins.get(host)
        if address is None:
            raise httpcore.ConnectError(f"refused: {host} was not checked")
        return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("refused: no Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that calls only addresses the policy allows (channel, carrier and node
    APIs, custom channels' push URLs): a refused one fails like an unreachable host. Every request
    checks the host again, and a new connection goes to the checked address, not to a second lookup
    of the name (DNS rebinding); the URL keeps the name, so the Host header, TLS SNI, the certificate
    check and the pooling of connections all stay per name."""

    def __init__(
        self,
        policy: AddressPolicy,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        self.policy = policy
        self.backend = PinnedBackend()
        # httpx has no option for the network backend, so its pool is replaced by one that has it;
        # httpx's request and error mapping around the pool stay as they are.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            target = await self.policy.check(request.url)
        except Refused as exc:
            raise httpx.ConnectError(f"refused: {exc}", request=request) from None
        self.backend.pin(target)
        return await super().handle_async_request(request)
