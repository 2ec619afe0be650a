"""Liveness written in batches: each charger's latest sighting, presence claimed back only when free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from chargepoints import services
from chargepoints.models import ChargePoint
from chargepoints.services import ReceivedHeartbeat, charge_point_heartbeats_record
from chargepoints.services.liveness import Sighting, charge_points_seen_record

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_batch_sets_each_chargers_latest_last_seen(register_charge_point):
    for cp in ("CP-1", "CP-2"):
        register_charge_point(cp)
    ChargePoint.objects.update(connected=True, connection_channel="ch-a")
    updated = charge_points_seen_record(
        sightings=[
            Sighting(charge_point_id="CP-1", channel_name="ch-a", at=AT + timedelta(seconds=5)),
            Sighting(charge_point_id="CP-1", channel_name="ch-a", at=AT),
            Sighting(charge_point_id="CP-2", channel_name="ch-a", at=AT),
            Sighting(charge_point_id="GONE", channel_name="ch-a", at=AT),
        ]
    )
    assert updated == 2
    assert dict(ChargePoint.objects.values_list("charge_point_id", "last_seen")) == {
        "CP-1": AT + timedelta(seconds=5),
        "CP-2": AT,
    }


def test_an_empty_presence_is_claimed_back_and_another_connections_is_left_alone(register_charge_point):
    for cp in ("FREE", "HELD"):
        register_charge_point(cp)
    ChargePoint.objects.filter(charge_point_id="FREE").update(connected=True, connection_channel="")
    ChargePoint.objects.filter(charge_point_id="HELD").update(connected=True, connection_channel="newer", last_seen=AT)
    charge_points_seen_record(
        sightings=[Sighting(charge_point_id=cp, channel_name="older", at=AT + timedelta(1)) for cp in ("FREE", "HELD")]
    )
    assert dict(ChargePoint.objects.values_list("charge_point_id", "connection_channel")) == {
        "FREE": "older",
        "HELD": "newer",
    }
    assert ChargePoint.objects.get(charge_point_id="HELD").last_seen == AT


def test_an_offline_charger_comes_back_online(register_charge_point):
    register_charge_point("CP-1")
    ChargePoint.objects.update(connected=False, offline_since=AT, connection_channel="ch-a")
    charge_points_seen_record(sightings=[Sighting(charge_point_id="CP-1", channel_name="ch-a", at=AT)])
    assert list(ChargePoint.objects.values_list("connected", "offline_since")) == [(True, None)]


def test_a_batch_costs_the_same_queries_for_one_charger_or_fifty(register_charge_point):
    for n in range(50):
        register_charge_point(f"CP-{n}")
    ChargePoint.objects.update(connected=True, connection_channel="ch")

    def queries_for(count: int) -> int:
        batch = [Sighting(charge_point_id=f"CP-{n}", channel_name="ch", at=AT) for n in range(count)]
        with CaptureQueriesContext(connection) as captured:
            charge_points_seen_record(sightings=batch)
        return len(captured.captured_queries)

    assert queries_for(1) == queries_for(50)


def test_fifty_chargers_sightings_are_one_statement_to_postgresql(register_charge_point, monkeypatch):
    for n in range(50):
        register_charge_point(f"CP-{n}")
    ChargePoint.objects.update(connected=True, connection_channel="ch")
    ChargePoint.objects.filter(charge_point_id="CP-7").update(connected=False, offline_since=AT)
    sent: list[str] = []
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted_execute(cursor, query, params=None, **kwargs):
        sent.append(str(query))
        return execute(cursor, query, params, **kwargs)

    def counted_executemany(cursor, query, params_seq, **kwargs):
        params_seq = list(params_seq)
        sent.extend(str(query) for _ in params_seq)  # PostgreSQL executes it once per row
        return executemany(cursor, query, params_seq, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", counted_executemany)
    updated = charge_points_seen_record(
        sightings=[Sighting(charge_point_id=f"CP-{n}", channel_name="ch", at=AT) for n in range(50)]
    )
    monkeypatch.undo()
    assert updated == 50
    # one for the fifty, one for the charger coming back online (``charge_point_seen``)
    assert len([query for query in sent if "last_seen" in query]) == 2
    assert ChargePoint.objects.filter(last_seen=AT).count() == 50
    assert ChargePoint.objects.get(charge_point_id="CP-7").connected  # back online, found by the same statement


def test_a_batch_of_sightings_or_heartbeats_sets_no_savepoint_inside_its_callers_transaction(register_charge_point):
    """Within a caller's transaction (a write-behind buffer's unit, in its own savepoint) a batch
    of sightings or heartbeats of connected chargers is written without a savepoint of its own."""
    register_charge_point("CP-1")
    ChargePoint.objects.update(connected=True, connection_channel="ch-a")
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        charge_points_seen_record(sightings=[Sighting(charge_point_id="CP-1", channel_name="ch-a", at=AT)])
        charge_point_heartbeats_record(heartbeats=[ReceivedHeartbeat(charge_point_id="CP-1", received_at=AT)])
    assert not [query["sql"] for query in queries if "SAVEPOINT" in query["sql"]]
    assert ChargePoint.objects.get(charge_point_id="CP-1").last_heartbeat == AT


def test_a_presence_reclaimed_after_a_stall_is_only_a_free_one_and_leaves_last_seen(register_charge_point):
    """A stalled process's connection claims back the presence a command's caller cleared: online
    again, but ``last_seen`` stays what was heard (the sweep still judges the charger's silence); a
    presence another connection took meanwhile is left, the charger offline."""
    for cp in ("FREED", "TAKEN"):
        register_charge_point(cp)
    ChargePoint.objects.update(connected=False, offline_since=AT, last_seen=AT, connection_channel="")
    ChargePoint.objects.filter(charge_point_id="TAKEN").update(connection_channel="newer")
    for cp in ("FREED", "TAKEN"):
        services.charge_point_presence_reclaimed(charge_point_id=cp, channel_name="stalled")
    fields = ("charge_point_id", "connection_channel", "connected", "last_seen")
    assert sorted(ChargePoint.objects.values_list(*fields)) == [
        ("FREED", "stalled", True, AT),
        ("TAKEN", "newer", False, AT),
    ]
