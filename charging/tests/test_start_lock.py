"""A start serialised behind another start of its charger reads what that one committed (PostgreSQL).

The start's reads under the charger's lock must not come from a snapshot taken before the lock was
granted: the charger's other connection (another process) may hold the lock while it opens a
session on the same connector, which the waiting start must then supersede.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from charging.models import IdTag, Transaction, TransactionStatus
from charging.services.start_reads import id_tag_limits_locked, start_read_taken, starts_read_together
from charging.services.transaction_start import StartRequest, start_lookup_of_request, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")


def _start_request(charge_point_id: str, meter_start: int, started_at: datetime) -> StartRequest:
    return StartRequest(
        charge_point_id=charge_point_id,
        ocpp_version="1.6",
        start_key=f"1|tag|{meter_start}|{started_at.isoformat()}",
        started_at=started_at,
        connector_id=1,
        id_tag="TAG",
        meter_start_wh=Decimal(meter_start),
    )


def _start(charge_point_id: str, meter_start: int, started_at: datetime) -> int:
    return transaction_start(_start_request(charge_point_id, meter_start, started_at)).transaction.pk


def test_a_start_waiting_for_the_chargers_lock_supersedes_the_session_committed_meanwhile(behind_a_lock) -> None:
    charge_point_register(charge_point_id="CP-LOCK-1", heartbeat_interval=60)
    earlier, later = behind_a_lock(
        lambda: _start("CP-LOCK-1", 1000, T0),  # the old connection's start holds the charger's lock
        lambda: _start("CP-LOCK-1", 2000, T0 + timedelta(minutes=10)),  # the new connection's
    )
    statuses = dict(Transaction.objects.filter(pk__in=[earlier, later]).values_list("pk", "status"))
    assert statuses == {earlier: TransactionStatus.ENDED, later: TransactionStatus.ACTIVE}


def test_a_started_waiting_for_the_chargers_lock_is_ended_by_the_stop_parked_meanwhile(behind_a_lock) -> None:
    """An Ended that overtook its Started, parked by the charger's other connection while the
    Started waited for the charger's lock, ends the session the Started opens."""
    charge_point_register(charge_point_id="CP-LOCK-2", heartbeat_interval=60, ocpp_version="2.0.1")
    _, started = behind_a_lock(
        lambda: transaction_stop(  # the old connection parks the Ended under the charger's lock
            StopRequest(
                charge_point_id="CP-LOCK-2",
                ocpp_transaction_id="TX-L",
                stopped_at=T0 + timedelta(hours=1),
                action="TransactionEvent",
                payload={"seqNo": 1},
                seq_no=1,
            )
        ),
        lambda: (
            transaction_start(
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
        ),
    )
    assert Transaction.objects.get(pk=started).status == TransactionStatus.ENDED


def _start_read_together(charge_point_id: str, meter_start: int, started_at: datetime) -> int:
    """``_start`` as the first start of its charger in a batch (``start_reads``): the batch's lock
    skips a charger held elsewhere, and its start then waits for the lock and reads after it."""
    request = _start_request(charge_point_id, meter_start, started_at)
    lookup = start_lookup_of_request(request)
    assert lookup is not None
    with starts_read_together([lookup]):
        result = transaction_start(request)
        assert start_read_taken(lookup) is None  # nothing left for it
    return result.transaction.pk


def test_a_batch_start_of_a_charger_locked_elsewhere_supersedes_the_session_committed_meanwhile(
    behind_a_lock,
) -> None:
    charge_point_register(charge_point_id="CP-LOCK-3", heartbeat_interval=60)
    earlier, later = behind_a_lock(
        lambda: _start("CP-LOCK-3", 1000, T0),  # the old connection's start holds the charger's lock
        lambda: _start_read_together("CP-LOCK-3", 2000, T0 + timedelta(minutes=10)),  # the new one's batch
    )
    statuses = dict(Transaction.objects.filter(pk__in=[earlier, later]).values_list("pk", "status"))
    assert statuses == {earlier: TransactionStatus.ENDED, later: TransactionStatus.ACTIVE}


def test_two_starts_of_a_card_limited_to_one_session_at_once_on_two_chargers_do_not_both_charge(behind_a_lock) -> None:
    """Two chargers' starts of one fleet card (``max_concurrent_sessions`` 1) written at once by two
    batches (two lanes or processes): the second waits for the first's commit and is ConcurrentTx."""
    charge_point_register(charge_point_id="CP-LOCK-3", heartbeat_interval=60)
    charge_point_register(charge_point_id="CP-LOCK-4", heartbeat_interval=60)
    IdTag.objects.create(id_tag="TAG", max_concurrent_sessions=1)
    first, second = behind_a_lock(
        lambda: transaction_start(_start_request("CP-LOCK-3", 1000, T0)).id_tag_info,
        lambda: transaction_start(_start_request("CP-LOCK-4", 2000, T0 + timedelta(seconds=1))).id_tag_info,
    )
    assert (first.status, second.status) == ("Accepted", "ConcurrentTx")
    statuses = Transaction.objects.order_by("pk").values_list("charge_point__charge_point_id", "id_tag_status")
    assert list(statuses) == [("CP-LOCK-3", "Accepted"), ("CP-LOCK-4", "ConcurrentTx")]


def test_two_starts_of_two_cards_of_a_group_limited_to_one_session_at_once_do_not_both_charge(behind_a_lock) -> None:
    """As above, for two cards of a fleet account whose limit is the group's: each start locks the group."""
    charge_point_register(charge_point_id="CP-LOCK-5", heartbeat_interval=60)
    charge_point_register(charge_point_id="CP-LOCK-6", heartbeat_interval=60)
    group = IdTag.objects.create(id_tag="GROUP", max_concurrent_sessions=1)
    IdTag.objects.create(id_tag="TAG", parent=group)
    IdTag.objects.create(id_tag="TAG-2", parent=group)
    second_card = dataclasses.replace(_start_request("CP-LOCK-6", 2000, T0 + timedelta(seconds=1)), id_tag="TAG-2")
    first, second = behind_a_lock(
        lambda: transaction_start(_start_request("CP-LOCK-5", 1000, T0)).id_tag_info,
        lambda: transaction_start(second_card).id_tag_info,
    )
    assert (first.status, second.status) == ("Accepted", "ConcurrentTx")


def _backend_waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def _answered(request: StartRequest) -> str:
    """The idTagInfo status a start is answered."""
    info = transaction_start(request).id_tag_info
    assert info is not None
    return info.status


@pytest.mark.django_db(transaction=True)
def test_two_batches_with_starts_of_two_limited_groups_in_opposite_orders_do_not_deadlock() -> None:
    """Two batches (two lanes or gateway processes), each with a start of a card of fleet A and one
    of fleet B (each group limited to one session at once), in opposite orders: each start locked its
    group's row at its turn, so the first batch held A and waited for B while the second held B and
    waited for A, until PostgreSQL chose a victim (a deadlock: its batch failed, written again). A
    batch locks the limit rows of all its starts' tags at once, in the order of their primary keys:
    the second waits for the first's commit, then counts its sessions."""
    from django.db import connections, transaction

    fleets = {}
    for fleet in ("A", "B"):
        group = IdTag.objects.create(id_tag=f"FLEET-{fleet}", max_concurrent_sessions=1)
        fleets[fleet] = [IdTag.objects.create(id_tag=f"{fleet}-{n}", parent=group).id_tag for n in (1, 2)]
    for n in range(1, 5):
        charge_point_register(charge_point_id=f"CP-DL-{n}", heartbeat_interval=60)

    def request(n: int, id_tag: str) -> StartRequest:
        return dataclasses.replace(_start_request(f"CP-DL-{n}", 1000 * n, T0 + timedelta(seconds=n)), id_tag=id_tag)

    first_batch = [request(1, fleets["A"][0]), request(2, fleets["B"][0])]
    second_batch = [request(3, fleets["B"][1]), request(4, fleets["A"][1])]
    first_started, second_started = threading.Event(), threading.Event()
    pids: list[int] = []
    answers: dict[str, list[str]] = {}
    errors: dict[str, BaseException] = {}

    def batch(name: str, requests: list[StartRequest], between: Callable[[], None]) -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    pids.append(cursor.fetchone()[0])
                lookups = [start_lookup_of_request(r) for r in requests]
                with starts_read_together([lookup for lookup in lookups if lookup is not None]):
                    statuses = [_answered(requests[0])]
                    between()
                    statuses.append(_answered(requests[1]))
            answers[name] = statuses
        except BaseException as error:  # reported by the test
            errors[name] = error
        finally:
            connections.close_all()

    def first_between() -> None:
        first_started.set()
        deadline = time.monotonic() + 20
        # the second batch's first start done, or the second batch waiting for this one's locks
        while not second_started.is_set() and not (len(pids) == 2 and _backend_waits_for_a_lock(pids[1])):
            assert time.monotonic() < deadline, "the second batch neither started nor waited"
            time.sleep(0.01)

    first = threading.Thread(target=batch, args=("first", first_batch, first_between))
    first.start()
    assert first_started.wait(20)
    second = threading.Thread(target=batch, args=("second", second_batch, second_started.set))
    second.start()
    first.join(30)
    second.join(30)
    assert not first.is_alive() and not second.is_alive()
    assert errors == {}
    assert answers == {"first": ["Accepted", "Accepted"], "second": ["ConcurrentTx", "ConcurrentTx"]}


def test_a_batch_locks_no_limit_of_a_start_whose_charger_is_held_elsewhere(behind_a_lock) -> None:
    """A start whose charger the batch skipped (held by another transaction: the charger's other
    connection) locks its charger at its turn, then its card's limit: the batch does not lock that
    limit ahead, which would hold the limit while waiting for the charger (every other start takes
    them charger first: a lock order inverted, a deadlock with a batch holding the charger)."""
    charge_point_register(charge_point_id="CP-LOCK-7", heartbeat_interval=60)
    card = IdTag.objects.create(id_tag="TAG", max_concurrent_sessions=1)
    request = _start_request("CP-LOCK-7", 1000, T0)
    lookup = start_lookup_of_request(request)
    assert lookup is not None

    def batch_start() -> tuple[bool, str]:
        with starts_read_together([lookup]):
            locked_ahead = id_tag_limits_locked([card.pk])
            return locked_ahead, _answered(request)

    _, (locked_ahead, status) = behind_a_lock(
        lambda: ChargePoint.objects.select_for_update().get(charge_point_id="CP-LOCK-7"), batch_start
    )
    assert (locked_ahead, status) == (False, "Accepted")
