"""SSRF protection: webhook URLs may not point into the CSMS's own network.

A URL is checked when a subscription is saved (API and admin) and resolved again before sending,
once per receiver per claimed batch; the deliveries then connect to exactly the addresses that were
checked (``webhook_target_resolve`` + ``pinned_resolver.PinnedResolver``, the HTTP client's
resolver), so a DNS answer that changes between the check and the connect (rebinding) cannot reach
an internal address. This module does not import the HTTP client (aiohttp): the processes that only
check URLs (the gateway's workers, the API) do not load it (about 5 % of a worker's start-up).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.conf import settings

from kernel.log_format import REDACTED

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


# A path segment that reads as a token (a capability URL's secret: Slack's, Discord's, Teams'
# webhook links): 16 characters or more with a digit, or with both upper and lower case letters.
_TOKEN_SEGMENT = re.compile(r"^(?=.{16,}$)(?:.*[0-9]|(?=.*[a-z]).*[A-Z])")


def webhook_url_redacted(url: str) -> str:
    """``url`` as it is shown to whoever may not manage webhooks (a read-only API key, staff
    without the change permission on subscriptions, the dashboard, the admin's history): the
    user information's password (the user itself when it has none), every query value, the
    fragment and path segments that read as tokens (16 characters or more, with a digit or both
    cases) replaced by ``[redacted]``; the scheme, host,
    port, other path segments and query names kept. A URL that does not parse is ``[redacted]``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not one)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{REDACTED}@{hostport}"
    path = "/".join(REDACTED if _TOKEN_SEGMENT.match(segment) else segment for segment in parts.path.split("/"))
    query = "&".join(_query_item_redacted(item) for item in parts.query.split("&")) if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def _query_item_redacted(item: str) -> str:
    """``name=[redacted]``; a bare item (``?<token>``) ``[redacted]``; an empty one as it is."""
    name, equals, _ = item.partition("=")
    if equals:
        return f"{name}={REDACTED}"
    return REDACTED if item else item
