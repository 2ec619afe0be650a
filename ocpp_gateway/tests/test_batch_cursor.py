"""A group-commit batch's plain statements share one cursor (``kernel.plain_sql.bound_cursors_kept``):
psycopg finds a parameter's dumper and a column's loader once per cursor, not once per statement.
Each statement still reads its own rows, a unit that fails still fails alone, and the cursor is
closed once the batch is over."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from kernel.plain_sql import bound_cursor, bound_cursors_kept
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import Refused, one_batch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]


def _selected(n: int, used: list[Any], refuse: bool = False) -> int:
    """A unit: one plain statement reading ``n`` back; the cursor it ran on noted in ``used``; then
    ``Refused`` if ``refuse``."""
    with bound_cursor() as cursor:
        cursor.execute("SELECT %s::int * 10", [n])
        (value,) = cursor.fetchone()
        used.append(cursor.cursor)
    if refuse:
        raise Refused(n)
    return value


def test_a_batch_s_statements_run_on_one_cursor_closed_after_it():
    used: list[Any] = []
    units = ((_selected, {"n": n, "used": used}) for n in range(4))
    answers = asyncio.run(one_batch(CommitGroup(max_units=64), *units))
    assert answers == [0, 10, 20, 30]  # each statement's own rows
    assert len(used) == 4 and len({id(cursor) for cursor in used}) == 1
    assert used[0].closed


def test_a_unit_that_fails_after_its_statement_fails_alone_and_the_others_read_their_own_rows():
    used: list[Any] = []
    units = [{"n": 1, "used": used}, {"n": 2, "used": used, "refuse": True}, {"n": 3, "used": used}]
    answers = asyncio.run(one_batch(CommitGroup(max_units=64), *((_selected, unit) for unit in units)))
    assert answers[0] == 10 and isinstance(answers[1], Refused) and answers[2] == 30
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


def test_a_connection_opened_again_inside_the_block_gets_a_cursor_of_its_own():
    used: list[Any] = []
    with bound_cursors_kept():
        _selected(1, used)
        connection.close()
        _selected(2, used)
        _selected(3, used)
    assert used[0] is not used[1] and used[1] is used[2]
    assert used[0].closed and used[1].closed


def test_a_block_inside_another_lends_the_outer_block_s_cursor():
    used: list[Any] = []
    with transaction.atomic(), bound_cursors_kept():
        _selected(1, used)
        with bound_cursors_kept():
            _selected(2, used)
        _selected(3, used)
        assert not used[0].closed
    assert len({id(cursor) for cursor in used}) == 1 and used[0].closed
