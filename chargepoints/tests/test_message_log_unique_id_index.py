"""The message log's ``unique_id`` index is a hash one on PostgreSQL (chargepoints 0012, issue 15:
a logged frame's insert hashes its unique id once, where a btree's compared it by collation), and
every query of the log by ``unique_id`` still finds its rows through it: the pairing of a CALL with
its answer (``ocpp_message_pair``), a changelist page's answers (``ocpp_call_answers``), the admin's
search by an exact unique id (ORed with a charger match)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from ocpp.messages import MessageType

from chargepoints.models import ChargePoint, OcppMessage
from chargepoints.selectors import ocpp_call_answers, ocpp_message_pair

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's index methods and plans"),
]

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
INDEX = "ocpp_message_unique_id"


@pytest.fixture
def log() -> list[ChargePoint]:
    """Four chargers' logs, 1,200 exchanges each (a CALL and its CALLRESULT, one UUID a pair), analysed."""
    chargers = [ChargePoint.objects.create(charge_point_id=f"CP-IDX-{n}", heartbeat_interval=300) for n in range(4)]
    rows = []
    for charger in chargers:
        for n in range(1200):
            uid, at = str(uuid.uuid4()), T0 + timedelta(seconds=n)
            rows.append(OcppMessage(charge_point=charger, direction="in", message_type=MessageType.Call,
                                    unique_id=uid, action="Heartbeat", frame=f'[2,"{uid}","Heartbeat",{{}}]',
                                    created_at=at))  # fmt: skip
            rows.append(OcppMessage(charge_point=charger, direction="out", message_type=MessageType.CallResult,
                                    unique_id=uid, action="Heartbeat", frame=f'[3,"{uid}",{{}}]',
                                    created_at=at + timedelta(milliseconds=5)))  # fmt: skip
    OcppMessage.objects.bulk_create(rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chargepoints_ocppmessage")
    return chargers


def _plans(queries: CaptureQueriesContext) -> list[str]:
    """The plans of the captured queries of the log that match a unique id."""
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            sql = query["sql"]
            if 'FROM "chargepoints_ocppmessage"' in sql and '"unique_id"' in sql.split("WHERE", 1)[-1]:
                cursor.execute(f"EXPLAIN {sql}")
                plans.append("\n".join(line for (line,) in cursor.fetchall()))
    return plans


def _assert_through_the_index(plans: list[str]) -> None:
    assert plans
    for plan in plans:
        assert INDEX in plan, plan
        assert "Seq Scan on chargepoints_ocppmessage" not in plan, plan


def test_the_unique_id_index_is_a_hash_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT am.amname, pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
            " WHERE c.relname = %s",
            [INDEX],
        )
        method, definition = cursor.fetchone()
    assert method == "hash"
    assert definition.endswith("USING hash (unique_id)")


def test_a_calls_answer_is_found_through_the_index(log: list[ChargePoint]) -> None:
    call = OcppMessage.objects.filter(charge_point=log[1], message_type=MessageType.Call).order_by("id")[600]
    with CaptureQueriesContext(connection) as queries:
        answer = ocpp_message_pair(message=call)
        assert answer is not None and answer.unique_id == call.unique_id and answer.direction == "out"
        assert ocpp_message_pair(message=answer) == call
    _assert_through_the_index(_plans(queries))


def test_a_pages_answers_are_found_through_the_index(log: list[ChargePoint]) -> None:
    """A filtered page spread over the log's chargers and hours (e.g. one action's CALLs): only the
    unique ids narrow its answers down."""
    calls = OcppMessage.objects.filter(message_type=MessageType.Call).order_by("-id")
    page = list(calls)[::97][:50]
    with CaptureQueriesContext(connection) as queries:
        answers = ocpp_call_answers(messages=page)
    assert {call.pk: answer.unique_id for call, answer in ((c, answers[c.pk]) for c in page)} == {
        call.pk: call.unique_id for call in page
    }
    _assert_through_the_index(_plans(queries))


def test_the_admins_search_by_unique_id_goes_through_the_index(client: Client, log: list[ChargePoint]) -> None:
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    wanted = OcppMessage.objects.filter(charge_point=log[3]).order_by("id")[101]
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/chargepoints/ocppmessage/", {"q": wanted.unique_id})
    assert response.status_code == 200
    assert {m.pk for m in response.context["cl"].result_list} == set(
        OcppMessage.objects.filter(unique_id=wanted.unique_id).values_list("pk", flat=True)
    )
    _assert_through_the_index(_plans(queries))
