"""SSRF protection: webhook URLs may not point into the CSMS's own network.

A URL is checked when a subscription is saved (API and admin) and resolved again before sending,
once per receiver per claimed batch; the deliveries then connect to exactly the addresses that were
checked (``webhook_target_resolve`` + ``PinnedResolver``, the HTTP client's resolver), so a DNS
answer that changes between the check and the connect (rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from yarl import URL

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Local-use NAT64 (RFC 8215): never a public receiver, whatever IPv4 address it carries.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ``::a.b.c.d``


class UnsafeWebhookUrl(Exception):
    """The URL may never be delivered to (scheme, credentials, port, internal address)."""


class WebhookHostUnresolved(UnsafeWebhookUrl):
    """The host does not resolve now: refused for a new subscription, retried for a delivery."""


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL and the addresses a delivery may connect to, in resolver order."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to: mapped, compatible, NAT64, 6to4 and Teredo forms."""
    found = [address for address in (ip.ipv4_mapped, ip.sixtofour) if address is not None]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.teredo:
        found.extend(ip.teredo)
    return found


def is_internal(ip: IpAddress) -> bool:
    """Private, loopback, link-local, reserved or multicast, directly or embedded in an IPv6 form."""
    if not ip.is_global or ip.is_multicast:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        return ip in _LOCAL_NAT64 or any(is_internal(embedded) for embedded in _embedded_ipv4(ip))
    return False


def _parse(url: str) -> tuple[SplitResult, int]:
    """The URL's parts and port, or UnsafeWebhookUrl naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookUrl("Use an http:// or https:// URL with a host name.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("The URL may not carry credentials (user:password@); the signature authenticates.")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeWebhookUrl("The port must be a number from 1 to 65535.") from None
    if port == 0:
        raise UnsafeWebhookUrl("The port must be a number from 1 to 65535.")
    return parts, port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise WebhookHostUnresolved(f"The host {host!r} does not resolve.") from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def _refuse_internal(host: str, addresses: tuple[str, ...]) -> None:
    internal = sorted(a for a in addresses if is_internal(ipaddress.ip_address(a.split("%")[0])))
    if internal:
        raise UnsafeWebhookUrl(
            f"The host {host!r} resolves to a private, loopback or link-local address "
            f"({', '.join(internal)}); set CSMS_WEBHOOK_ALLOW_PRIVATE=1 to allow internal receivers."
        )


def webhook_target_resolve(url: str) -> WebhookTarget:
    """Check ``url`` and resolve its host once: the addresses a delivery must connect to.

    Raises UnsafeWebhookUrl (never deliverable: scheme, credentials, port, an internal address
    unless ``CSMS_WEBHOOK_ALLOW_PRIVATE=1``) or its subclass WebhookHostUnresolved (DNS failed).
    """
    parts, port = _parse(url)
    host = parts.hostname
    assert host is not None
    addresses = _resolve(host, port)
    if not settings.CSMS_WEBHOOK_ALLOW_PRIVATE:
        _refuse_internal(host, addresses)
    return WebhookTarget(url=url, host=host, port=port, addresses=addresses)


def webhook_url_check(url: str) -> None:
    """The check of a subscription's URL (API and admin); raises UnsafeWebhookUrl with the reason.

    ``CSMS_WEBHOOK_ALLOW_PRIVATE=1`` allows internal receivers and hosts that do not resolve yet.
    """
    if settings.CSMS_WEBHOOK_ALLOW_PRIVATE:
        _parse(url)
        return
    webhook_target_resolve(url)


class PinnedResolver(AbstractResolver):
    """The resolver of the delivery client: it answers only with the addresses a check vetted.

    ``pin(target)`` records a target's addresses for its host and port (each claim does, after its
    check); a host and port nobody pinned does not resolve. The HTTP client keeps the URL's host
    name for the Host header, TLS SNI and the certificate check, and never resolves it itself.
    """

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, target: WebhookTarget) -> None:
        host = URL(target.url).raw_host or target.host  # the client asks for the IDNA form
        self._pins[(host.lower(), target.port)] = target.addresses

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        addresses = self._pins.get((host.lower(), port), ())
        results = [_resolve_result(host, address, port) for address in addresses]
        results = [result for result in results if family in (socket.AF_UNSPEC, result["family"])]
        if not results:
            raise OSError(f"No vetted address for {host}:{port}")
        return results

    async def close(self) -> None:
        self._pins.clear()


def _resolve_result(host: str, address: str, port: int) -> ResolveResult:
    version = ipaddress.ip_address(address.split("%")[0]).version
    return ResolveResult(
        hostname=host,
        host=address,
        port=port,
        family=socket.AF_INET6 if version == 6 else socket.AF_INET,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
