"""kernel.connection_storage: connections read at once in sync threads, as asgiref reads them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from asgiref import local as asgiref_local
from django.db import DEFAULT_DB_ALIAS, connections

from kernel import connection_storage


def _in_thread(read: Any) -> Any:
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(read()))
    thread.start()
    thread.join()
    return found[0]


def test_installed_in_front_of_the_asgiref_local_it_knows():
    assert (
        connection_storage.source_fingerprint() == connection_storage.FINGERPRINT
    )  # asgiref changed: check the module
    assert type(getattr(connections, "_connections")).__name__ == "SyncFastLocal"  # noqa: B009
    assert connection_storage.install() is True  # idempotent


def test_each_sync_thread_reads_its_own_connection_every_time():
    here = connections[DEFAULT_DB_ALIAS]
    other = _in_thread(lambda: (connections[DEFAULT_DB_ALIAS], connections[DEFAULT_DB_ALIAS]))
    assert here is connections[DEFAULT_DB_ALIAS]
    assert other[0] is other[1]
    assert other[0] is not here


def test_a_thread_running_an_event_loop_reads_through_asgiref():
    async def twice() -> tuple[Any, Any]:
        return connections[DEFAULT_DB_ALIAS], connections[DEFAULT_DB_ALIAS]

    first, second = _in_thread(lambda: asyncio.run(twice()))
    assert first is second
    assert first is not connections[DEFAULT_DB_ALIAS]


def test_a_local_it_does_not_know_is_left_as_it_is(monkeypatch):
    unknown = asgiref_local.Local(thread_critical=False)
    monkeypatch.setattr(connections, "_connections", unknown)
    assert connection_storage.install() is False
    assert getattr(connections, "_connections") is unknown  # noqa: B009


def test_writes_and_deletes_reach_the_storage_asgiref_reads():
    local = asgiref_local.Local(thread_critical=True)
    fast = connection_storage.sync_fast_local(local)
    fast.value = 1
    assert local.value == 1 and fast.value == 1
    del fast.value
    assert not hasattr(local, "value") and not hasattr(fast, "value")
