"""The group commit's batch thread keeps its pooled connection from one batch to the next while
units wait (``ocpp_gateway.db``): one checkout for back-to-back batches, given back once the queue
is empty, after ``KEPT_SECONDS``, or after an error; one the server closed between two batches is
replaced before the next, whose session settings are its own again."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connection, connections, transaction

from ocpp_gateway import db as gateway_db
from ocpp_gateway.group_commit import CommitGroup

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the pooled connection: PostgreSQL"),
]


def _backend() -> tuple[int, str]:
    """A unit: the PostgreSQL backend it ran on and its batch's lock timeout."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('lock_timeout')")
        pid, lock_timeout = cursor.fetchone()
    return pid, lock_timeout


def _terminated(pid: int) -> None:
    """``pg_terminate_backend(pid)`` from a connection of its own, once the backend is gone."""
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or 5432
    ) as monitor:
        monitor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            if not monitor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still there")


def _backend_terminated_after_commit() -> tuple[int, str]:
    """A unit: its backend, terminated by the server once its batch committed (between two batches)."""
    pid, lock_timeout = _backend()
    transaction.on_commit(lambda: _terminated(pid))
    return pid, lock_timeout


def _backend_terminated_now() -> None:
    """A unit: its backend terminated under it, then a statement (which fails: the batch is lost)."""
    _terminated(_backend()[0])
    _backend()


def _checkouts() -> int:
    return int(connection.pool.get_stats()["requests_num"])  # type: ignore[attr-defined]  # PostgreSQL's wrapper


async def _two_batches(group: CommitGroup, first: Any, *then: Any) -> list[Any]:
    """``first`` alone in a batch, ``then`` queued while it is written (the next batch); every outcome."""
    release = threading.Event()

    def held() -> Any:
        release.wait(5)
        return first()

    loop = asyncio.get_running_loop()
    firsts = asyncio.ensure_future(group.run(held))
    await asyncio.sleep(0.05)
    queued = [loop.create_task(group.run(unit)) for unit in then]
    release.set()
    return list(await asyncio.gather(firsts, *queued, return_exceptions=True))


def _thread_holds_a_connection(group: CommitGroup) -> bool:
    return group._executor.submit(lambda: connections["default"].connection is not None).result()


def test_back_to_back_batches_share_one_checkout_given_back_once_none_waits():
    group = CommitGroup(max_units=64)
    before = _checkouts()
    outcomes = asyncio.run(_two_batches(group, _backend, _backend, _backend))
    assert _checkouts() - before == 1
    assert len({pid for pid, _ in outcomes}) == 1
    assert not _thread_holds_a_connection(group)  # the queue is empty: given back to the pool


def test_a_connection_is_kept_at_most_kept_seconds(monkeypatch):
    monkeypatch.setattr(gateway_db, "KEPT_SECONDS", 0.0)
    before = _checkouts()
    asyncio.run(_two_batches(CommitGroup(max_units=64), _backend, _backend))
    assert _checkouts() - before == 2


def test_a_kept_connection_the_server_closed_between_batches_is_replaced_with_its_settings():
    outcomes = asyncio.run(_two_batches(CommitGroup(max_units=64), _backend_terminated_after_commit, _backend))
    (terminated, _), (replaced, lock_timeout) = outcomes
    assert replaced != terminated
    assert lock_timeout == "100ms"  # the first pass's, set on the new connection's transaction


def test_a_batch_whose_connection_broke_fails_and_the_next_takes_another():
    group = CommitGroup(max_units=64)
    broken, after = asyncio.run(_two_batches(group, _backend_terminated_now, _backend))
    assert isinstance(broken, Exception)
    assert isinstance(after, tuple) and after[1] == "100ms"


def test_a_batch_ending_after_its_event_loop_stopped_gives_its_connection_back():
    """A server shutting down: its event loop stops while a batch is written and units wait for the
    next, which will never start; the batch's connection goes back to the pool."""
    group = CommitGroup(max_units=64)
    loop = asyncio.new_event_loop()
    queued = threading.Event()

    def stopping_the_loop() -> tuple[int, str]:
        queued.wait(5)
        backend = _backend()
        loop.call_soon_threadsafe(loop.stop)
        for _ in range(500):
            if not loop.is_running():
                return backend
            time.sleep(0.01)
        raise AssertionError("the loop still runs")

    async def batches() -> None:
        first = asyncio.ensure_future(group.run(stopping_the_loop))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(group.run(_backend))  # for a next batch
        queued.set()
        await asyncio.gather(first, waiting)

    try:
        with pytest.raises(RuntimeError, match="stopped"):
            loop.run_until_complete(batches())
        assert not _thread_holds_a_connection(group)
    finally:
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))  # the next batch
        loop.close()
