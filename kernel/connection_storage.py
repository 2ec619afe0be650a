"""Django's database connections looked up without an exception per lookup in sync threads.

``django.db.connections[alias]`` (and every use of ``django.db.connection``, ``atomic``,
``on_commit``) reads the connection from asgiref's thread-critical ``Local``. In a thread with no
running event loop (the gateway's group-commit thread, which runs every session message), that
read fails an attribute lookup, then ``asyncio.get_running_loop()`` raises and is caught before the
thread's ``threading.local`` is read: about 3 µs per lookup on this machine, ten to twenty lookups
per session message (issue 15). ``install`` puts a stand-in in front of that ``Local``: in a sync
thread it reads the same ``threading.local`` at once (``asyncio._get_running_loop()`` is None
exactly when ``get_running_loop()`` raises); in a thread running an event loop, and for every write
and delete, it defers to asgiref's ``Local`` itself. Same storage, same values, same errors.

``install`` leaves everything as it is (and says so) unless the ``Local`` is asgiref's
``_ThreadCriticalLocal`` whose ``_get_storage`` is the one read here (``FINGERPRINT``).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from asyncio.events import _get_running_loop
from typing import Any

from asgiref import local as asgiref_local
from django.db import connections

logger = logging.getLogger(__name__)

# sha256 of asgiref's ``_ThreadCriticalLocal._get_storage`` and ``__getattr__`` sources (asgiref 3.13).
FINGERPRINT = "d1cf260e83d1d54f21d3215021e4770902bd5c6c89e422b13a95c3d3314e45f8"


def source_fingerprint() -> str:
    """sha256 of the asgiref methods the stand-in reads past, as ``FINGERPRINT`` records them."""
    cls = asgiref_local._ThreadCriticalLocal
    text = inspect.getsource(cls._get_storage) + inspect.getsource(cls.__getattr__)
    return hashlib.sha256(text.encode()).hexdigest()


def sync_fast_local(local: Any) -> Any:
    """A stand-in for asgiref's thread-critical ``local``, read at once in sync threads."""
    storage = object.__getattribute__(local, "_storage")  # the threading.local of sync threads

    class SyncFastLocal:
        __slots__ = ()

        def __getattribute__(self, key: str) -> Any:
            if _get_running_loop() is None:
                return getattr(storage, key)
            return getattr(local, key)

        def __setattr__(self, key: str, value: Any) -> None:
            setattr(local, key, value)

        def __delattr__(self, key: str) -> None:
            delattr(local, key)

    return SyncFastLocal()


def _fingerprint_or_none() -> str | None:
    """``source_fingerprint()``, or None where asgiref's source cannot be read (only ``.pyc`` shipped)."""
    try:
        return source_fingerprint()
    except (OSError, TypeError):
        return None


def install() -> bool:
    """Put the stand-in in front of ``django.db.connections``' storage (idempotent). Returns
    whether it is in place; False (logged) when asgiref's ``Local`` is not the one read here."""
    local = getattr(connections, "_connections")  # noqa: B009  (not in Django's stubs)
    if type(local).__name__ == "SyncFastLocal":
        return True
    if type(local) is not asgiref_local._ThreadCriticalLocal or _fingerprint_or_none() != FINGERPRINT:
        logger.warning(
            "asgiref's Local is not the one kernel.connection_storage knows: connections read as it reads them"
        )
        return False
    setattr(connections, "_connections", sync_fast_local(local))  # noqa: B010
    return True
