"""SSRF protection: webhook URLs may not point into the CSMS's own network.

A URL is checked when a subscription is saved (API and admin) and resolved again for every
delivery; the delivery then connects to exactly the addresses that were checked
(``webhook_target_resolve`` + ``pinned_handlers``), so a DNS answer that changes between the check
and the connect (rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

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


def _connect_to(addresses: tuple[str, ...], requested: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """``socket.create_connection`` to the vetted addresses (in order) instead of resolving again."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, requested[1]), *args, **kwargs)
        except OSError as failure:
            error = failure
    raise error or OSError("no vetted address")


def _pinned(connection_class: type[http.client.HTTPConnection], target: WebhookTarget) -> Any:
    """A connection class for urllib that reaches ``target.addresses``; Host header, SNI and
    certificate check still use the URL's host name (the connection keeps it as ``host``)."""

    def build(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = connection_class(host, **kwargs)
        connection._create_connection = functools.partial(_connect_to, target.addresses)  # type: ignore[attr-defined]
        return connection

    return build


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, target: WebhookTarget) -> None:
        super().__init__()
        self.target = target

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_pinned(http.client.HTTPConnection, self.target), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, target: WebhookTarget) -> None:
        super().__init__()
        self.target = target

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_pinned(http.client.HTTPSConnection, self.target), req, context=self._context)


def pinned_handlers(target: WebhookTarget) -> list[urllib.request.BaseHandler]:
    """urllib handlers that send to ``target``'s vetted addresses only (and never via a proxy
    from the environment, which would resolve the host again)."""
    return [urllib.request.ProxyHandler({}), _PinnedHTTPHandler(target), _PinnedHTTPSHandler(target)]
