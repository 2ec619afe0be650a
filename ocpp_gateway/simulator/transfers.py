"""Files a simulated charger fetches (firmware) or uploads (diagnostics, logs): over HTTP, and only
to and from this machine, so that trying the CSMS out reaches no one else."""

from __future__ import annotations

import asyncio
import ipaddress
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit


def is_on_this_machine(url: str) -> bool:
    """An http(s) URL whose host is a loopback address or ``localhost``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return parts.hostname == "localhost"


async def transfer(url: str, body: bytes | None = None, *, echo: Callable[[str], None]) -> bytes:
    """GET ``url`` (or PUT ``body`` to it) and return the answer's body. Elsewhere than on this
    machine nothing is sent: ``echo`` says so, and the answer is empty (the caller goes on as if it
    had been sent). Raises OSError (urllib's errors included) when the transfer fails."""
    if not is_on_this_machine(url):
        echo(f"{url} is not on this machine: nothing transferred, reported as done")
        return b""
    request = urllib.request.Request(url, data=body, method="PUT" if body is not None else "GET")
    return await asyncio.to_thread(_http, request)


def _http(request: urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=30) as response:  # http(s) on loopback only
        return response.read()
