"""A group-commit batch's StatusNotifications written together (``chargepoints.services.status_writes``,
``charging.services.status_reads``; PostgreSQL): two statements for the whole batch's statuses and
one for its ``Available`` statuses' open sessions (none when their chargers have none open), and
each status ends as it ends written alone
(the supersede rule, a first status creating its connector, its signal and webhook event, a reboot's
sessions closed); a status after another unit of its charger in the batch, or in a batch written
again, writes its own way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone

from chargepoints.models import ChargePoint, Connector
from chargepoints.services import charge_point_register, connector_status_set, status_writes
from chargepoints.services.status_writes import StatusLookup, StatusWrite
from chargepoints.signals import connector_status_reported
from charging import metering
from charging.models import MeterSample, Reservation, Transaction, TransactionStatus
from charging.services.ledger_reads import ledger_read_taken
from charging.services.status_reads import connector_sessions_read_dropped, connector_sessions_read_together
from charging.services.transaction_start import StartRequest, transaction_start
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import T0, Refused, charger_held, connection_context, one_batch, refused
from ocpp_gateway.tests.conftest import RoundTrip
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

_ONE_STATUS = "WITH cp AS (UPDATE chargepoints_chargepoint SET last_seen"  # one status's write (alone or its own way)
_ONE_ASKED = "SELECT (CASE WHEN v.status IN ("  # a lone status's question, after its write
_CONNECTORS_WRITTEN = "WITH given AS (SELECT * FROM unnest("  # the batch's statuses' connectors
_SESSIONS_ASKED = 'SELECT 1 FROM "chargepoints_transaction"'  # an Available status's own read
_SESSIONS_READ = "t.charge_point_id = ANY(%s::bigint[]) AND t.status = %s"  # the batch's Available statuses'
_SESSIONS_LOCKED = "WHERE t.charge_point_id = %s AND t.status = %s AND"  # a connector's sessions read its own way
_LEDGER_ALONE = "WHERE transaction_id = %s AND measurand = %s"  # a closed session's ledger read its own way
_LEDGERS_READ = "WHERE transaction_id = ANY(%s::bigint[]) AND measurand = %s"  # the batch's closes' ledgers
_RESERVATIONS_ENDED = 'UPDATE "chargepoints_reservation" SET'  # a Faulted or Unavailable status's reservations


@pytest.fixture
def reported() -> Iterator[list[tuple[Any, ...]]]:
    """Every ``connector_status_reported`` sent: (charger id, connector, EVSE, status, charging, at)."""
    sent: list[tuple[Any, ...]] = []

    def receiver(sender: Any, *, charge_point: ChargePoint, **kwargs: Any) -> None:
        sent.append(
            (
                charge_point.charge_point_id,
                kwargs["connector_id"],
                kwargs["evse_id"],
                kwargs["status"],
                kwargs["charging"],
                kwargs["at"],
            )
        )

    connector_status_reported.connect(receiver, dispatch_uid="test_batch_statuses")
    yield sent
    connector_status_reported.disconnect(dispatch_uid="test_batch_statuses")


def _status(charge_point_id: str, status: str, minutes: float | None, **more: Any) -> dict[str, Any]:
    timestamp = None if minutes is None else T0 + timedelta(minutes=minutes)
    return {"charge_point_id": charge_point_id, "connector_id": 1, "status": status, "timestamp": timestamp, **more}


def _cases(prefix: str) -> list[tuple[list[dict[str, Any]], bool, dict[str, Any]]]:
    """(statuses stored first, whether the charger boots after them, the status under test) per charger."""
    cp = [f"{prefix}-{n}" for n in range(8)]
    return [
        ([], False, _status(cp[0], "Available", 1)),  # a connector's first status: its row created
        ([_status(cp[1], "Available", 10)], False, _status(cp[1], "Charging", 20, charging=True)),
        ([_status(cp[2], "Charging", 20)], False, _status(cp[2], "Available", 10)),  # older: superseded
        ([_status(cp[3], "Charging", 20)], True, _status(cp[3], "Available", 10)),  # older, after a boot: written
        (
            [_status(cp[4], "Available", 10, evse_id=2)],
            False,
            _status(cp[4], "Occupied", 30, evse_id=2),  # 2.0.1: its EVSE
        ),
        ([_status(cp[5], "Available", 10)], False, _status(cp[5], "Faulted", None, error_code="GroundFailure")),
        (
            [_status(cp[6], "Available", 10)],
            False,
            _status(cp[6], "Unavailable", -60 * 24 * 365 * 20, info="x", vendor_id="V", vendor_error_code="E1"),
        ),  # a clock of 20 years ago: its receipt stands in, the time sent kept
        ([_status(cp[7], "Charging", 10)], True, _status(cp[7], "Available", 30)),  # a session the boot cut
    ]


def _started(charge_point_id: str, *, connector_id: int) -> None:
    transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"{connector_id}|tag|1000|{T0.isoformat()}",
            started_at=T0,
            connector_id=connector_id,
            id_tag="TAG",
            meter_start_wh=Decimal(1000),
        )
    )


def _arranged(prefix: str) -> list[dict[str, Any]]:
    """Each case's charger registered, its earlier statuses stored, its boot; the last one's session
    (not kept by any connection, a register reading in its ledger) started before that boot. The
    statuses under test."""
    cases = _cases(prefix)
    for stored, boots, status in cases:
        charge_point_register(charge_point_id=status["charge_point_id"], heartbeat_interval=60)
        for earlier in stored:
            connector_status_set(**earlier)
        if status["charge_point_id"].endswith("-7"):
            started = transaction_start(
                StartRequest(
                    charge_point_id=status["charge_point_id"],
                    ocpp_version="1.6",
                    start_key=f"1|tag|1000|{T0.isoformat()}",
                    started_at=T0,
                    connector_id=1,
                    id_tag="TAG",
                    meter_start_wh=Decimal(1000),
                )
            )
            MeterSample.objects.create(
                charge_point_id=started.transaction.charge_point_id,
                transaction_id=started.transaction.pk,
                connector_id=1,
                source="MeterValues",
                timestamp=T0 + timedelta(minutes=5),
                received_at=timezone.now(),
                measurand=metering.ENERGY_REGISTER,
                value=Decimal(1600),
            )
        if boots:
            ChargePoint.objects.filter(charge_point_id=status["charge_point_id"]).update(last_boot_at=timezone.now())
    return [status for _, _, status in cases]


def _outcome(prefix: str, reported: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each case's connector, signal, webhook event and sessions, its charger's name and the time
    it was last seen (a receipt that stands in for a status's time) written as placeholders."""
    ended = []
    for charge_point in ChargePoint.objects.filter(charge_point_id__startswith=f"{prefix}-").order_by(
        "charge_point_id"
    ):
        seen = charge_point.last_seen

        def plain(value: Any, seen: datetime | None = seen, name: str = charge_point.charge_point_id) -> Any:
            if isinstance(value, str) and value.endswith("Z"):  # a time in event data
                value = datetime.fromisoformat(value)
            if isinstance(value, datetime) and value > T0 + timedelta(hours=1):  # a receipt: when, to the last seen
                return "SEEN" if value == seen else "BEFORE" if seen is not None and value < seen else value
            return "CP" if value == name else value

        connectors = [
            tuple(plain(value) for value in row)
            for row in Connector.objects.filter(charge_point=charge_point)
            .order_by("evse_id", "connector_id")
            .values_list(
                "evse_id", "connector_id", "status", "error_code", "info", "vendor_id", "vendor_error_code",
                "status_timestamp", "charger_timestamp", "updated_at",
            )
        ]  # fmt: skip
        signals = [
            tuple(plain(value) for value in sent) for sent in reported if sent[0] == charge_point.charge_point_id
        ]
        events = [
            {key: plain(value) for key, value in body["data"].items()}
            for body in WebhookDelivery.objects.filter(event_type=EventType.CONNECTOR_STATUS_CHANGED).values_list(
                "body", flat=True
            )
            for body in [json.loads(body)]
            if body["data"]["charge_point_id"] == charge_point.charge_point_id
        ]
        sessions = list(
            Transaction.objects.filter(charge_point=charge_point).values_list(
                "status", "stop_reason", "closed_by_csms", "meter_stop_wh", "energy_wh"
            )
        )
        ended.append((connectors, signals, sorted(events, key=str), sessions))
    return ended


async def test_a_batch_s_statuses_are_written_by_two_statements_and_end_as_each_written_alone(
    statements: list[str], reported: list[tuple[Any, ...]]
) -> None:
    await WebhookSubscription.objects.acreate(
        url="http://hooks.invalid/", events=[EventType.CONNECTOR_STATUS_CHANGED], secret="s"
    )
    alone = await sync_to_async(_arranged)("ALONE")
    together = await sync_to_async(_arranged)("BATCH")
    reported.clear()
    for status in alone:  # the general path: each status in its own transaction, no batch
        await sync_to_async(transaction.atomic(connector_status_set))(**status)
    group = CommitGroup(max_units=64)
    del statements[:]
    results = await one_batch(group, *((connection_context(), connector_status_set, status) for status in together))
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert not [sql for sql in statements if sql.startswith(_ONE_STATUS)]
    assert len([sql for sql in statements if sql.startswith(_CONNECTORS_WRITTEN)]) == 1
    # Only the Charging status asks its own way (its connection here does not know its sessions);
    # each of the three Available asked too before.
    assert len([sql for sql in statements if sql.startswith(_SESSIONS_ASKED)]) == 1
    assert len([sql for sql in statements if _SESSIONS_READ in sql]) == 1
    # the session the boot cut is closed as read by the batch, not read again (round 15)
    assert not [sql for sql in statements if _SESSIONS_LOCKED in sql]
    # and its ledger read with the batch's other closes', not alone (round 16)
    assert not [sql for sql in statements if _LEDGER_ALONE in sql]
    assert len([sql for sql in statements if _LEDGERS_READ in sql]) == 1
    expected = await sync_to_async(_outcome)("ALONE", reported)
    assert await sync_to_async(_outcome)("BATCH", reported) == expected
    assert [sessions for *_, sessions in expected][7] == [
        (TransactionStatus.ENDED, "Reboot", True, Decimal(1600), Decimal(600))
    ]
    assert [len(signals) for _, signals, _, _ in expected] == [1, 1, 0, 1, 1, 1, 1, 1]  # the superseded sends none


async def test_a_status_after_another_unit_of_its_charger_in_the_batch_writes_its_own_way(
    statements: list[str], reported: list[tuple[Any, ...]]
) -> None:
    await WebhookSubscription.objects.acreate(
        url="http://hooks.invalid/", events=[EventType.CONNECTOR_STATUS_CHANGED], secret="s"
    )
    for name in ("TWICE-1", "TWICE-2"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    context = connection_context()
    del statements[:]
    results = await one_batch(
        group,
        (context, connector_status_set, _status("TWICE-1", "Available", 1)),  # its row created
        (connection_context(), connector_status_set, _status("TWICE-2", "Preparing", 1)),
        (context, connector_status_set, _status("TWICE-1", "Preparing", 2)),  # the same connector again
        (context, connector_status_set, _status("TWICE-1", "Available", 3, connector_id=2)),  # another connector
        (context, connector_status_set, _status("TWICE-1", "Charging", 1.5)),  # older than the second
    )
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert len([sql for sql in statements if sql.startswith(_CONNECTORS_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_STATUS)]) == 3
    rows = Connector.objects.order_by("charge_point__charge_point_id", "connector_id").values_list(
        "charge_point__charge_point_id", "connector_id", "status", "status_timestamp"
    )
    assert [row async for row in rows] == [
        ("TWICE-1", 1, "Preparing", T0 + timedelta(minutes=2)),
        ("TWICE-1", 2, "Available", T0 + timedelta(minutes=3)),
        ("TWICE-2", 1, "Preparing", T0 + timedelta(minutes=1)),
    ]
    assert [(cp, connector, status) for cp, connector, _, status, _, _ in reported] == [
        ("TWICE-1", 1, "Available"),
        ("TWICE-2", 1, "Preparing"),
        ("TWICE-1", 1, "Preparing"),
        ("TWICE-1", 2, "Available"),
    ]
    previous = [
        (data["charge_point_id"], data["connector_id"], data["previous_status"] or "", data["status"])
        async for body in WebhookDelivery.objects.values_list("body", flat=True)
        for data in [json.loads(body)["data"]]
    ]
    assert sorted(previous) == [
        ("TWICE-1", 1, "", "Available"),
        ("TWICE-1", 1, "Available", "Preparing"),
        ("TWICE-1", 2, "", "Available"),
        ("TWICE-2", 1, "", "Preparing"),
    ]


async def test_a_batch_written_again_writes_each_status_once_its_own_way(
    statements: list[str], reported: list[tuple[Any, ...]]
) -> None:
    for name in ("AGAIN-1", "AGAIN-2"):
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
        await sync_to_async(connector_status_set)(**_status(name, "Available", 1))
    reported.clear()
    group = CommitGroup(max_units=64)
    del statements[:]
    results = await one_batch(
        group,
        (connection_context(), connector_status_set, _status("AGAIN-1", "Preparing", 2)),
        (connection_context(), refused, {}),
        (connection_context(), connector_status_set, _status("AGAIN-2", "Faulted", 2, connector_id=2)),
    )
    assert [type(result) for result in results] == [Connector, Refused, Connector]
    # the first pass wrote both ahead, then was rolled back; the second wrote each its own way
    assert len([sql for sql in statements if sql.startswith(_CONNECTORS_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_STATUS)]) == 2
    rows = Connector.objects.order_by("charge_point__charge_point_id", "connector_id").values_list(
        "charge_point__charge_point_id", "connector_id", "status"
    )
    assert [row async for row in rows] == [
        ("AGAIN-1", 1, "Preparing"),
        ("AGAIN-2", 1, "Available"),
        ("AGAIN-2", 2, "Faulted"),
    ]
    # each status's signal sent in each pass; the one committed was the second's, each once
    assert [(cp, status) for cp, _, _, status, _, _ in reported[-2:]] == [
        ("AGAIN-1", "Preparing"),
        ("AGAIN-2", "Faulted"),
    ]


async def test_an_unknown_charger_s_status_fails_alone(statements: list[str]) -> None:
    await sync_to_async(charge_point_register)(charge_point_id="KNOWN", heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    results = await one_batch(
        group,
        (connection_context(), connector_status_set, _status("UNKNOWN", "Available", 1)),
        (connection_context(), connector_status_set, _status("KNOWN", "Available", 1)),
    )
    assert isinstance(results[0], ChargePoint.DoesNotExist)
    assert isinstance(results[1], Connector)
    assert await Connector.objects.filter(charge_point__charge_point_id="KNOWN", status="Available").aexists()


async def test_available_statuses_on_chargers_without_an_open_session_read_no_sessions(statements: list[str]) -> None:
    """The statuses' write tells which of their chargers have a session open (round 28): the
    ``Available`` statuses of chargers with none (most: they follow a stop) are answered without
    the sessions' read, and none reads its own way."""
    names = [f"NOSESSION-{n}" for n in range(3)]
    for name in names:
        await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
    group = CommitGroup(max_units=64)
    del statements[:]
    results = await one_batch(
        group, *((connection_context(), connector_status_set, _status(name, "Available", 1)) for name in names)
    )
    assert [type(result) for result in results] == [Connector] * 3
    assert len([sql for sql in statements if sql.startswith(_CONNECTORS_WRITTEN)]) == 1
    assert not [sql for sql in statements if _SESSIONS_READ in sql or sql.startswith(_SESSIONS_ASKED)]
    assert not [sql for sql in statements if _SESSIONS_LOCKED in sql]
    available = Connector.objects.filter(charge_point__charge_point_id__in=names, status="Available")
    assert await available.acount() == 3


async def test_a_status_alone_in_its_batch_is_written_ahead_with_its_question_in_one_round_trip(
    statements: list[str], round_trips: list[RoundTrip]
) -> None:
    """Round 33: a lone status is written ahead by its own statement, and the question its
    closing status asks (a session open on its connector?) goes in the same round trip, after the
    write's lock, where it was a statement and a round trip of its own; its batch is then its
    COMMIT. A session open on another connector of its charger is not read."""
    await sync_to_async(charge_point_register)(charge_point_id="ALONE", heartbeat_interval=60)
    await sync_to_async(_started)("ALONE", connector_id=2)
    group = CommitGroup(max_units=64)
    for n, status in enumerate(("Preparing", "Available"), start=1):
        del statements[:], round_trips[:]
        (result,) = await one_batch(group, (connection_context(), connector_status_set, _status("ALONE", status, n)))
        assert isinstance(result, Connector)
        assert len([sql for sql in statements if sql.startswith(_ONE_STATUS)]) == 1
        assert not [sql for sql in statements if "SKIP LOCKED" in sql or sql.startswith(_CONNECTORS_WRITTEN)]
        assert not [sql for sql in statements if sql.startswith(_SESSIONS_ASKED) or _SESSIONS_READ in sql]
        (write,) = [trip for trip in round_trips if any(sql.startswith(_ONE_STATUS) for sql in trip.statements)]
        assert [sql for sql in write.statements if sql.startswith((_ONE_STATUS, _ONE_ASKED))] == [
            sql for sql in write.statements if not sql.startswith(("BEGIN", "SET"))
        ]
        assert len(write.statements) == 5  # BEGIN, its two settings, the write, its question
        assert [trip.kind for trip in round_trips if trip.connection == write.connection][-1] == "_commit_gen"
    statuses = Connector.objects.filter(charge_point__charge_point_id="ALONE").values_list("connector_id", "status")
    assert [row async for row in statuses] == [(1, "Available")]
    open_sessions = Transaction.objects.filter(charge_point__charge_point_id="ALONE", status=TransactionStatus.ACTIVE)
    assert await open_sessions.aexists()


async def test_a_lone_available_closes_the_session_its_charger_s_reboot_cut(statements: list[str]) -> None:
    """Its question says a session is open on its connector: the batch reads it and closes it."""
    await sync_to_async(charge_point_register)(charge_point_id="REBOOTED", heartbeat_interval=60)
    await sync_to_async(_started)("REBOOTED", connector_id=1)
    await ChargePoint.objects.filter(charge_point_id="REBOOTED").aupdate(last_boot_at=timezone.now())
    group = CommitGroup(max_units=64)
    del statements[:]
    (result,) = await one_batch(
        group, (connection_context(), connector_status_set, _status("REBOOTED", "Available", 6))
    )
    assert isinstance(result, Connector)
    assert len([sql for sql in statements if _SESSIONS_READ in sql]) == 1
    assert not [sql for sql in statements if sql.startswith(_SESSIONS_ASKED)]
    session = await Transaction.objects.aget(charge_point__charge_point_id="REBOOTED")
    assert (session.status, session.stop_reason, session.closed_by_csms) == (TransactionStatus.ENDED, "Reboot", True)


async def test_a_charger_held_elsewhere_is_not_waited_for_by_the_batch_s_write(
    statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its status waits for it at its turn, its own way; the batch's others are written ahead
    (a write that waited for the held charger would time out first and write none ahead). The
    holder (as another batch that set the charger's ``last_seen``) commits right after the batch's
    write: a connectors' write that took the held charger too would have written its status then,
    as of before the holder's commit."""
    async with charger_held("HELD-1", "HELD-2", "HELD-3", held="HELD-2", lock="FOR NO KEY UPDATE") as holder:
        write = status_writes.rows_pipelined

        def written_then_released(statements: Any) -> Any:
            rows = write(statements)
            holder.commit()  # the holder done right after the batch's write
            return rows

        monkeypatch.setattr(status_writes, "rows_pipelined", written_then_released)
        group = CommitGroup(max_units=64)
        del statements[:]
        results = await one_batch(
            group,
            *((connection_context(), connector_status_set, _status(f"HELD-{n}", "Preparing", 1)) for n in (1, 2, 3)),
        )
    assert [type(result) for result in results] == [Connector, Connector, Connector]
    assert len([sql for sql in statements if sql.startswith(_CONNECTORS_WRITTEN)]) == 1
    assert len([sql for sql in statements if sql.startswith(_ONE_STATUS)]) == 1  # the held one's, after the holder
    statuses = Connector.objects.order_by("charge_point__charge_point_id").values_list("status", flat=True)
    assert [status async for status in statuses] == ["Preparing"] * 3


def test_a_close_s_ledger_read_ahead_is_no_later_unit_s_once_its_status_ran() -> None:
    """The ledger read with an ``Available`` status's sessions (a session not kept by a connection)
    answers its close; once the status's unit ran (``connector_sessions_read_dropped``), no other
    unit of its charger gets it: a later unit reads the ledger as it is then (round 16)."""
    (status,) = [status for status in _arranged("DROP") if status["charge_point_id"] == "DROP-7"]
    lookup = StatusLookup(**status)
    for dropped in (False, True):
        with transaction.atomic():
            charge_point = ChargePoint.objects.get(charge_point_id="DROP-7")
            write = StatusWrite(timezone.now(), charge_point, Connector(), True)
            with connector_sessions_read_together([(lookup, write)]):
                session = Transaction.objects.get(charge_point=charge_point)
                if dropped:
                    connector_sessions_read_dropped(lookup)
                    assert ledger_read_taken(session) is None
                else:
                    assert [sample.value for sample in ledger_read_taken(session) or []] == [Decimal(1600)]


async def test_a_faulted_or_unavailable_status_ends_the_reservations_its_write_found_and_costs_none_without(
    statements: list[str],
) -> None:
    """Only a status whose write found an active reservation on its connector (``status_asked``)
    sends the statement that ends it; a batch's statuses and a lone one alike."""
    for name, reserved_connector in (("RES-1", 1), ("RES-2", 2), ("RES-3", None), ("RES-4", 1)):
        charge_point = await sync_to_async(charge_point_register)(charge_point_id=name, heartbeat_interval=60)
        if reserved_connector is not None:
            await Reservation.objects.acreate(
                charge_point=charge_point,
                reservation_id=1,
                connector_id=reserved_connector,
                id_tag="TAG",
                expiry_date=timezone.now() + timedelta(hours=1),
            )
    group = CommitGroup(max_units=64)
    del statements[:]
    results = await one_batch(
        group,
        (connection_context(), connector_status_set, _status("RES-1", "Faulted", 1)),
        (connection_context(), connector_status_set, _status("RES-2", "Faulted", 1)),  # reserved elsewhere
        (connection_context(), connector_status_set, _status("RES-3", "Unavailable", 1)),
    )
    assert not [result for result in results if isinstance(result, BaseException)], results
    assert len([sql for sql in statements if sql.startswith(_RESERVATIONS_ENDED)]) == 1
    del statements[:]
    await one_batch(group, (connection_context(), connector_status_set, _status("RES-3", "Faulted", 2)))
    assert not [sql for sql in statements if sql.startswith(_RESERVATIONS_ENDED)]
    await one_batch(group, (connection_context(), connector_status_set, _status("RES-4", "Unavailable", 2)))
    assert len([sql for sql in statements if sql.startswith(_RESERVATIONS_ENDED)]) == 1
    ended = Reservation.objects.order_by("charge_point__charge_point_id").values_list(
        "charge_point__charge_point_id", "status"
    )
    assert [row async for row in ended] == [("RES-1", "cancelled"), ("RES-2", "active"), ("RES-4", "cancelled")]
