"""The offline sweep's interval while a charger may keep its previous one (heartbeat_pace)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargepoints import services
from chargepoints.models import ChargePoint
from chargepoints.services import heartbeat_pace

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def connected(charge_point_id: str, **fields: object) -> None:
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(connected=True, last_seen=AT, **fields)


def offline_after(seconds: int) -> list[str]:
    return services.mark_offline_stale_charge_points(now=AT + timedelta(seconds=seconds))


def test_an_operator_s_shorter_interval_is_waited_for_once_the_charger_booted(register_charge_point):
    charge_point = register_charge_point("CP-1", heartbeat_interval=300)
    connected("CP-1")
    services.charge_point_update(charge_point=ChargePoint.objects.get(pk=charge_point.pk), heartbeat_interval=60)
    stored = ChargePoint.objects.get(pk=charge_point.pk)
    assert (stored.heartbeat_interval, stored.previous_heartbeat_interval) == (60, 300)
    assert offline_after(590) == []  # it still heartbeats every 300 s: 2x that
    boot = services.charge_point_boot(charge_point_id="CP-1", vendor="V", model="M")
    assert boot.interval == 60  # the answer it adopts
    assert ChargePoint.objects.get(pk=charge_point.pk).previous_heartbeat_interval is None
    connected("CP-1")
    assert offline_after(130) == ["CP-1"]


def test_a_longer_interval_is_waited_for_at_once(register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=60)
    connected("CP-1")
    services.charge_point_update(charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), heartbeat_interval=300)
    assert offline_after(590) == []
    assert offline_after(610) == ["CP-1"]


def test_a_second_change_before_the_charger_took_the_first_keeps_the_interval_it_has(register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=300)
    connected("CP-1")
    for interval in (120, 60):
        services.charge_point_update(
            charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), heartbeat_interval=interval
        )
    stored = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (stored.heartbeat_interval, stored.previous_heartbeat_interval) == (60, 300)
    assert offline_after(590) == []
    assert offline_after(610) == ["CP-1"]


def test_the_same_interval_stored_again_changes_nothing(register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=60)
    services.charge_point_update(charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), heartbeat_interval=60)
    stored = ChargePoint.objects.get(charge_point_id="CP-1")
    assert stored.previous_heartbeat_interval is None


def test_a_push_accepted_is_the_charger_s_pace_at_once(register_charge_point, django_capture_on_commit_callbacks):
    register_charge_point("CP-1", heartbeat_interval=300)
    connected("CP-1")
    services.charge_point_update(charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), heartbeat_interval=60)
    with django_capture_on_commit_callbacks(execute=True):
        services.charge_point_heartbeat_interval_taken(
            charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), value="60"
        )
    stored = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (stored.heartbeat_interval, stored.previous_heartbeat_interval) == (60, None)
    assert offline_after(130) == ["CP-1"]


def test_a_push_answered_reboot_required_keeps_the_interval_the_charger_has_until_it_boots(
    register_charge_point, django_capture_on_commit_callbacks
):
    register_charge_point("CP-1", heartbeat_interval=300)
    connected("CP-1")
    for value in ("120", "60"):  # twice before the reboot: 300 is still what it heartbeats at
        with django_capture_on_commit_callbacks(execute=True):
            services.charge_point_heartbeat_interval_taken(
                charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), value=value, after_reboot=True
            )
    stored = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (stored.heartbeat_interval, stored.previous_heartbeat_interval) == (60, 300)
    assert offline_after(590) == []
    assert offline_after(610) == ["CP-1"]


def test_reboot_required_after_the_charger_booted_on_an_earlier_change_keeps_that_change(
    register_charge_point, django_capture_on_commit_callbacks
):
    """Once booted on the first change, the charger heartbeats at 120: that is what is kept."""
    register_charge_point("CP-1", heartbeat_interval=300)
    services.charge_point_update(charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), heartbeat_interval=120)
    services.charge_point_boot(charge_point_id="CP-1", vendor="V", model="M")
    connected("CP-1")
    with django_capture_on_commit_callbacks(execute=True):
        services.charge_point_heartbeat_interval_taken(
            charge_point=ChargePoint.objects.get(charge_point_id="CP-1"), value="60", after_reboot=True
        )
    stored = ChargePoint.objects.get(charge_point_id="CP-1")
    assert (stored.heartbeat_interval, stored.previous_heartbeat_interval) == (60, 120)
    assert offline_after(230) == []
    assert offline_after(250) == ["CP-1"]


def test_an_interval_stored_after_a_push_left_unanswered_is_not_undone_by_a_read_of_the_older_push(
    register_charge_point, django_capture_on_commit_callbacks
):
    """A push of 60 times out (unconfirmed), the operator then stores 120: a configuration read
    reporting 60 (the charger took the older push) leaves the operator's 120 the record, owed to the
    charger, 60 what it keeps meanwhile."""
    charge_point = register_charge_point("CP-1", heartbeat_interval=300)
    with django_capture_on_commit_callbacks(execute=True):
        heartbeat_pace.charge_point_heartbeat_interval_unconfirmed(charge_point=charge_point, value="60")
    services.charge_point_update(charge_point=ChargePoint.objects.get(pk=charge_point.pk), heartbeat_interval=120)
    with django_capture_on_commit_callbacks(execute=True):
        heartbeat_pace.heartbeat_intervals_reported(reported={charge_point.pk: "60"})
    stored = ChargePoint.objects.get(pk=charge_point.pk)
    assert (stored.heartbeat_interval, stored.unconfirmed_heartbeat_interval) == (120, None)
    assert stored.reported_heartbeat_interval == 60
