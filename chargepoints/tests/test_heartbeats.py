"""Heartbeats stored in batches: a row each, the latest as liveness, constant queries per batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from chargepoints import services
from chargepoints.models import ChargePoint, Heartbeat
from chargepoints.services import ReceivedHeartbeat

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_batch_stores_every_heartbeat_and_each_chargers_latest(register_charge_point):
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    stored = services.charge_point_heartbeats_record(
        heartbeats=[
            ReceivedHeartbeat(charge_point_id="CP-1", received_at=AT + timedelta(seconds=1)),
            ReceivedHeartbeat(charge_point_id="CP-2", received_at=AT),
            ReceivedHeartbeat(charge_point_id="CP-1", received_at=AT),
            ReceivedHeartbeat(charge_point_id="GONE", received_at=AT),  # deleted meanwhile: dropped
        ]
    )
    assert stored == 3
    assert Heartbeat.objects.filter(charge_point__charge_point_id="CP-1").count() == 2
    one, two = ChargePoint.objects.get(charge_point_id="CP-1"), ChargePoint.objects.get(charge_point_id="CP-2")
    assert one.last_heartbeat == one.last_seen == AT + timedelta(seconds=1)
    assert two.last_heartbeat == two.last_seen == AT


def test_a_batch_brings_offline_chargers_back_online(register_charge_point):
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    ChargePoint.objects.filter(charge_point_id="CP-1").update(connected=False, offline_since=AT)
    ChargePoint.objects.filter(charge_point_id="CP-2").update(connected=True)
    services.charge_point_heartbeats_record(
        heartbeats=[ReceivedHeartbeat(charge_point_id=cp, received_at=AT) for cp in ("CP-1", "CP-2")]
    )
    assert set(ChargePoint.objects.values_list("connected", "offline_since")) == {(True, None)}


def test_a_batch_costs_the_same_queries_for_one_charger_or_fifty(register_charge_point):
    for n in range(50):
        register_charge_point(f"CP-{n}")
    ChargePoint.objects.update(connected=True)  # only a charger coming back online costs its own queries

    def queries_for(count: int) -> int:
        beats = [ReceivedHeartbeat(charge_point_id=f"CP-{n}", received_at=AT) for n in range(count)]
        with CaptureQueriesContext(connection) as captured:
            services.charge_point_heartbeats_record(heartbeats=beats)
        return len(captured.captured_queries)

    assert queries_for(1) == queries_for(50)


def test_a_heartbeat_interval_the_charger_took_is_its_record_once_committed(
    register_charge_point, django_capture_on_commit_callbacks
):
    register_charge_point("CP-1")
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    with django_capture_on_commit_callbacks(execute=True):
        services.charge_point_heartbeat_interval_taken(charge_point=charge_point, value="090")
        assert ChargePoint.objects.get(charge_point_id="CP-1").heartbeat_interval == 60  # not before the commit
    assert ChargePoint.objects.get(charge_point_id="CP-1").heartbeat_interval == 90
    assert charge_point.heartbeat_interval == 60  # the caller's instance untouched


def test_a_heartbeat_interval_the_csms_does_not_keep_leaves_the_record_and_is_logged(register_charge_point, caplog):
    register_charge_point("CP-1")
    charge_point = ChargePoint.objects.get(charge_point_id="CP-1")
    for value in ("0", "86401", "+90", " 90", "1e2", "٣", ""):
        caplog.clear()
        services.charge_point_heartbeat_interval_taken(charge_point=charge_point, value=value)
        assert ChargePoint.objects.get(charge_point_id="CP-1").heartbeat_interval == 60, value
        assert [record.levelname for record in caplog.records] == ["WARNING"], value
        assert "CP-1 took HeartbeatInterval" in caplog.records[0].getMessage()
