"""1.6 RemoteStopTransaction requests: the transaction id as /api/v1/transactions shows it (text),
and the warnings about an id the CSMS knows no active session of the charger by, as for 2.0.1
RequestStopTransaction (in-process API
client; the charger is not connected, so each answer is a 503 with the command recorded)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from charging import selectors
from charging.models import Transaction, TransactionStatus
from commands.models import Command

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 4, 9, 31, tzinfo=UTC)


def stop(api_client, transaction_id, charge_point_id: str = "CP-1"):
    body = {"transaction_id": transaction_id}
    return api_client.post(f"/api/v1/ocpp16/{charge_point_id}/remote_stop_transaction", body, format="json")


def session(charge_point, *, status: str = TransactionStatus.ACTIVE) -> Transaction:
    return Transaction.objects.create(
        charge_point=charge_point, ocpp_version="1.6", start_key=f"k-{status}", started_at=T0, status=status
    )


def test_a_transaction_id_given_as_the_transactions_api_shows_it_is_sent_as_its_integer(
    api_client, register_charge_point
):
    """/api/v1/transactions shows ``"transaction_id": "7"``: sending it back was a 400 "not of type integer"."""
    session(register_charge_point("CP-1", ocpp_version="1.6"))
    transaction_id = api_client.get("/api/v1/transactions/").json()["results"][0]["transaction_id"]
    assert isinstance(transaction_id, str)
    response = stop(api_client, transaction_id)
    assert response.json()["error"] == "NotConnected"
    assert Command.objects.get().request == {"transaction_id": int(transaction_id)}
    assert "warnings" not in response.json()  # its own active session


@pytest.mark.parametrize("transaction_id", ["7x", "-7", "", "³", "99999999999"])
def test_a_transaction_id_that_is_no_32_bit_integer_is_still_a_400(api_client, register_charge_point, transaction_id):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = stop(api_client, transaction_id)
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["transaction_id"]
    assert not Command.objects.exists()


def test_an_unknown_transaction_is_sent_with_a_warning(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = stop(api_client, 4711)
    assert response.json()["warnings"] == [
        "Transaction 4711 is not known to the CSMS; the charger answers Rejected if it has no such transaction open."
    ]
    assert Command.objects.get().warnings == response.json()["warnings"]


def test_another_charger_s_transaction_is_sent_with_a_warning_naming_its_charger(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    theirs = session(register_charge_point("CP-2", ocpp_version="1.6"))
    (warning,) = stop(api_client, theirs.pk).json()["warnings"]
    assert warning.startswith(f"Transaction {theirs.pk} is a session of CP-2, not of CP-1;")


def test_an_ended_transaction_is_sent_with_a_warning(api_client, register_charge_point):
    ended = session(register_charge_point("CP-1", ocpp_version="1.6"), status=TransactionStatus.ENDED)
    (warning,) = stop(api_client, str(ended.pk)).json()["warnings"]
    assert warning.startswith(f"Transaction {ended.pk} of CP-1 has ended for the CSMS;")


def test_the_1_6_guard_reads_sessions_by_index_not_every_session(register_charge_point):
    """Probe: its lookup (``ocpp_transaction_id = id OR pk = id``, of any charger) could use no
    index: PostgreSQL read every session ever recorded on each remote stop."""
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    mine = session(charge_point)
    with connection.cursor() as cursor, CaptureQueriesContext(connection) as queries:
        assert selectors.remote_stop_warnings(charge_point=charge_point, transaction_id=mine.pk) == []
        [query] = [q["sql"] for q in queries.captured_queries]
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {query}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    lines = plan.splitlines()
    scans = [n for n, line in enumerate(lines) if f"Scan on {Transaction._meta.db_table}" in line]
    # An index scan bounded by its condition, or a bitmap heap scan of bitmap index scans (each bounded)
    assert scans and all("Bitmap Heap Scan" in lines[n] or "Index Cond" in lines[n + 1] for n in scans), plan
    assert "Seq Scan" not in plan and all(
        "Index Cond" in lines[n + 1] for n, line in enumerate(lines) if "Bitmap Index" in line
    )


def request_stop(api_client, transaction_id, charge_point_id: str = "CP-201"):
    body = {"transaction_id": transaction_id}
    return api_client.post(f"/api/v1/ocpp201/{charge_point_id}/request_stop_transaction", body, format="json")


def session201(charge_point, transaction_id: str, *, status: str = TransactionStatus.ACTIVE) -> Transaction:
    return Transaction.objects.create(
        charge_point=charge_point,
        ocpp_version="2.0.1",
        ocpp_transaction_id=transaction_id,
        start_key=transaction_id,
        started_at=T0,
        status=status,
    )


def test_a_2_0_1_request_stop_of_a_transaction_the_csms_knows_no_active_session_by_is_sent_with_a_warning(
    api_client, register_charge_point
):
    """2.0.1 F03, as 1.6 §5.12: the station answers Rejected for a transaction it does not have.
    Probe: a RequestStopTransaction for an unknown or ended transaction carried no warning, where
    the same 1.6 RemoteStopTransaction did."""
    charge_point = register_charge_point("CP-201", ocpp_version="2.0.1")
    session201(charge_point, "TX-OPEN")
    session201(charge_point, "TX-DONE", status=TransactionStatus.ENDED)
    session201(register_charge_point("CP-OTHER", ocpp_version="2.0.1"), "TX-THEIRS")
    assert "warnings" not in request_stop(api_client, "TX-OPEN").json()
    (ended,) = request_stop(api_client, "TX-DONE").json()["warnings"]
    assert ended.startswith("Transaction TX-DONE of CP-201 has ended for the CSMS;")
    for unknown in ("TX-NOPE", "TX-THEIRS"):  # the station names its own: another's id is none of its
        response = request_stop(api_client, unknown)
        assert response.json()["warnings"] == [
            f"Transaction {unknown} is not known to the CSMS; the charger answers Rejected if it has no such"
            " transaction open."
        ]
    assert Command.objects.filter(command="request_stop_transaction").exclude(warnings=[]).count() == 3
