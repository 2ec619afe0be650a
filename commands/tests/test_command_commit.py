"""A waited command's pending row commits without a flush of its own: the outcome's synchronous
commit, before the answer, makes both durable (issue 15: one WAL flush less per command)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from commands.models import Command, CommandState

pytestmark = pytest.mark.django_db(transaction=True)

ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"


def reset(client: APIClient, query: str = "") -> int:
    return int(client.post(f"/api/v1/ocpp16/CP-1/reset{query}", {"type": "Soft"}, format="json").status_code)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_a_waited_command_s_row_commits_without_a_flush_and_its_outcome_with_one(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")  # not connected: answered 503, recorded
    assert reset(api_client) == 503  # the key checked and remembered
    with CaptureQueriesContext(connection) as statements:
        assert reset(api_client) == 503
    recorded, completed = (query["sql"] for query in statements.captured_queries)
    assert ASYNC_COMMIT in recorded and "INSERT" in recorded
    assert ASYNC_COMMIT not in completed and "UPDATE" in completed
    assert synchronous_commit() == "on"  # for the statement's own transaction only
    assert [command.state for command in Command.objects.all()] == [CommandState.NOT_CONNECTED] * 2


def test_a_command_not_waited_for_is_flushed_before_its_answer(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    assert reset(api_client) == 503
    with CaptureQueriesContext(connection) as statements:
        reset(api_client, "?wait=false")  # here not connected: a 503 at once, the row flushed all the same
    recorded = statements.captured_queries[0]["sql"]
    assert "INSERT" in recorded and ASYNC_COMMIT not in recorded


def test_a_command_in_a_caller_s_transaction_leaves_that_transaction_s_commit_alone(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    assert reset(api_client) == 503
    with transaction.atomic():
        assert reset(api_client) == 503
        assert synchronous_commit() == "on"
