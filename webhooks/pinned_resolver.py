"""The delivery client's resolver: it answers only with the addresses ``url_safety`` vetted.

Apart from ``url_safety`` because it builds on the HTTP client (aiohttp), which only the delivery
imports (``webhooks.delivery``); the processes that only check URLs do not load it.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from webhooks.url_safety import WebhookTarget


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
