"""SSRF protection: webhook URLs may not point into the CSMS's own network."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeWebhookUrl(Exception):
    pass


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def webhook_url_check(url: str) -> None:
    """Refuse non-HTTP(S) URLs and hosts resolving to private, loopback or link-local addresses.

    Checked when a subscription is saved and again before every delivery (DNS can change).
    ``CSMS_WEBHOOK_ALLOW_PRIVATE=1`` allows internal receivers.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookUrl("Use an http:// or https:// URL with a host name.")
    if settings.CSMS_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UnsafeWebhookUrl(f"The host {parts.hostname!r} does not resolve.") from None
    internal = sorted({info[4][0] for info in infos if _is_internal(info[4][0])})
    if internal:
        raise UnsafeWebhookUrl(
            f"The host {parts.hostname!r} resolves to a private, loopback or link-local address "
            f"({', '.join(internal)}); set CSMS_WEBHOOK_ALLOW_PRIVATE=1 to allow internal receivers."
        )
