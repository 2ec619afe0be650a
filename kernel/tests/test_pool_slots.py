"""The suite's threads give their database connections back to the pool (conftest.py): a thread that
ended holding one kept its slot for the rest of the run, and a long run exhausted the pool."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection

from conftest import pool_connections_of_ended_threads, pool_connections_taken

pytestmark = pytest.mark.django_db


def _selected() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


async def test_a_call_in_the_test_loop_s_threads_gives_its_connection_back():
    """``asyncio.to_thread`` (and ``run_in_executor(None, ...)``) in an async test: the loop's thread
    ends with the test, holding the connection its call took (a test client's request closes none)."""
    before = await asyncio.to_thread(pool_connections_taken)
    assert await asyncio.to_thread(_selected) == 1
    assert await asyncio.to_thread(pool_connections_taken) == before


def test_a_connection_held_by_a_thread_that_ended_is_given_back_to_the_pool():
    before = pool_connections_taken()
    thread = threading.Thread(target=_selected, name="forgets-its-connection")
    thread.start()
    thread.join()
    assert pool_connections_taken() == before + 1
    assert pool_connections_of_ended_threads() == ["forgets-its-connection"]
    assert pool_connections_taken() == before
