"""Which event loop a worker thread serves.

The gateway's database threads (``ocpp_gateway.group_commit``) run service code for a daphne
process's event loop; code that must hand work back to that loop after a commit (``sites.triggers``)
asks here. Threads started by asgiref's ``SyncToAsync`` are not covered: see their caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_served = threading.local()


@contextmanager
def serving(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Within the block, this thread works for ``loop``."""
    _served.loop = loop
    try:
        yield
    finally:
        _served.loop = None


def served_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop this thread works for, if it was given one (``serving``)."""
    loop = getattr(_served, "loop", None)
    return loop if loop is not None and loop.is_running() else None
