"""A group-commit batch's plain statements share one cursor (``kernel.plain_sql.bound_cursors_kept``):
psycopg finds a parameter's dumper and a column's loader once per cursor, not once per statement.
Each statement still reads its own rows, a unit that fails still fails alone, and the cursor is
closed once the batch is over."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from kernel.plain_sql import bound_cursor, bound_cursors_kept
from ocpp_gateway.group_commit import CommitGroup

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]


class _Refused(Exception):
    """A unit's own refusal, after its statement: its batch is written again, in savepoints."""


def _selected(n: int, used: list[Any], refuse: bool = False) -> int:
    """A unit: one plain statement reading ``n`` back; the cursor it ran on noted in ``used``."""
    with bound_cursor() as cursor:
        cursor.execute("SELECT %s::int * 10", [n])
        (value,) = cursor.fetchone()
        used.append(cursor.cursor)
    if refuse:
        raise _Refused(n)
    return value


async def _one_batch(group: CommitGroup, *units: dict[str, Any]) -> list[Any]:
    """``_selected(**unit)`` for each unit, queued while a blocker holds the writer: one batch."""
    release = threading.Event()
    first = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    queued = [loop.create_task(group.run(_selected, **unit), context=contextvars.Context()) for unit in units]
    release.set()
    await first
    return list(await asyncio.gather(*queued, return_exceptions=True))


def test_a_batch_s_statements_run_on_one_cursor_closed_after_it():
    used: list[Any] = []
    answers = asyncio.run(_one_batch(CommitGroup(max_units=64), *({"n": n, "used": used} for n in range(4))))
    assert answers == [0, 10, 20, 30]  # each statement's own rows
    assert len(used) == 4 and len({id(cursor) for cursor in used}) == 1
    assert used[0].closed


def test_a_unit_that_fails_after_its_statement_fails_alone_and_the_others_read_their_own_rows():
    used: list[Any] = []
    units = [{"n": 1, "used": used}, {"n": 2, "used": used, "refuse": True}, {"n": 3, "used": used}]
    answers = asyncio.run(_one_batch(CommitGroup(max_units=64), *units))
    assert answers[0] == 10 and isinstance(answers[1], _Refused) and answers[2] == 30
    assert len(used) == 5  # units 1 and 2 in the first pass, all three in the second
    assert all(cursor.closed for cursor in used)


def test_outside_a_batch_each_statement_has_its_own_cursor_closed_at_its_block_s_end():
    used: list[Any] = []
    with transaction.atomic():
        assert _selected(1, used) == 10 and _selected(2, used) == 20
    assert used[0] is not used[1] and used[0].closed and used[1].closed


def test_a_query_log_switched_on_inside_the_block_logs_the_statements_after_it():
    """Django's query log is a property of the cursor's wrapper: the kept one is built again."""
    used: list[Any] = []
    with transaction.atomic(), bound_cursors_kept():
        _selected(1, used)
        with CaptureQueriesContext(connection) as queries:
            _selected(2, used)
        _selected(3, used)
    assert [query["sql"] for query in queries] == ["SELECT 2::int * 10"]
    assert used[0] is not used[1] and used[1] is not used[2] and all(cursor.closed for cursor in used)
