"""A start serialised behind another start of its charger reads what that one committed (PostgreSQL).

The start's reads under the charger's lock must not come from a snapshot taken before the lock was
granted: the charger's other connection (another process) may hold the lock while it opens a
session on the same connector, which the waiting start must then supersede.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from chargepoints.services import charge_point_register
from charging.models import Transaction, TransactionStatus
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WAIT_SECONDS = 20  # bound on waiting for the other start to queue behind the lock


def _start(charge_point_id: str, meter_start: int, started_at: datetime) -> int:
    result = transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"1|tag|{meter_start}|{started_at.isoformat()}",
            started_at=started_at,
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(meter_start),
        )
    )
    return result.transaction.pk


def _a_start_waits_for_a_lock(waiter_pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [waiter_pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.django_db(transaction=True)
def test_a_start_waiting_for_the_chargers_lock_supersedes_the_session_committed_meanwhile() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    charge_point_register(charge_point_id="CP-LOCK-1", heartbeat_interval=60)
    waiter_pid: list[int] = []
    waiter_ready, outcome = threading.Event(), {}

    def later_start() -> None:  # the charger's new connection, in another process
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    waiter_pid.append(cursor.fetchone()[0])
                waiter_ready.set()
                outcome["later"] = _start("CP-LOCK-1", 2000, T0 + timedelta(minutes=10))
        finally:
            connections.close_all()

    with transaction.atomic():  # the old connection's start holds the charger's lock
        earlier = _start("CP-LOCK-1", 1000, T0)
        thread = threading.Thread(target=later_start)
        thread.start()
        assert waiter_ready.wait(WAIT_SECONDS)
        deadline = time.monotonic() + WAIT_SECONDS
        while not _a_start_waits_for_a_lock(waiter_pid[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    statuses = dict(Transaction.objects.filter(pk__in=[earlier, outcome["later"]]).values_list("pk", "status"))
    assert statuses == {earlier: TransactionStatus.ENDED, outcome["later"]: TransactionStatus.ACTIVE}


@pytest.mark.django_db(transaction=True)
def test_a_started_waiting_for_the_chargers_lock_is_ended_by_the_stop_parked_meanwhile() -> None:
    """An Ended that overtook its Started, parked by the charger's other connection while the
    Started waited for the charger's lock, ends the session the Started opens."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    charge_point_register(charge_point_id="CP-LOCK-2", heartbeat_interval=60, ocpp_version="2.0.1")
    waiter_pid: list[int] = []
    waiter_ready, outcome = threading.Event(), {}

    def started() -> None:  # the charger's new connection, in another process
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    waiter_pid.append(cursor.fetchone()[0])
                waiter_ready.set()
                outcome["started"] = transaction_start(
                    StartRequest(
                        charge_point_id="CP-LOCK-2",
                        ocpp_version="2.0.1",
                        start_key="TX-L",
                        ocpp_transaction_id="TX-L",
                        started_at=T0,
                        seq_no=0,
                        started_event=True,
                        evse_id=1,
                        connector_id=1,
                        baseline_expected=False,
                    )
                ).transaction.pk
        finally:
            connections.close_all()

    with transaction.atomic():  # the old connection parks the Ended under the charger's lock
        transaction_stop(
            StopRequest(
                charge_point_id="CP-LOCK-2",
                ocpp_transaction_id="TX-L",
                stopped_at=T0 + timedelta(hours=1),
                action="TransactionEvent",
                payload={"seqNo": 1},
                seq_no=1,
            )
        )
        thread = threading.Thread(target=started)
        thread.start()
        assert waiter_ready.wait(WAIT_SECONDS)
        deadline = time.monotonic() + WAIT_SECONDS
        while not _a_start_waits_for_a_lock(waiter_pid[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    assert Transaction.objects.get(pk=outcome["started"]).status == TransactionStatus.ENDED
