"""Commands a dead process left pending (round 41's probe: a gateway killed with SIGKILL while its
command was in flight left it `pending` for ever, no `command.completed` event, the configuration read
after a boot never owed). Celery beat's sweep, on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from chargepoints.models import ChargePoint
from commands.models import Command, CommandState
from commands.services import ABANDONED, ABANDONED_MARGIN_SECONDS, ABANDONED_SWEPT_UNTIL
from ocpp_gateway.tasks import time_out_abandoned_commands
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_sweep_before():
    """Where earlier sweeps left off (the cache outlives a test's database) is forgotten."""
    cache.delete(ABANDONED_SWEPT_UNTIL)
    yield
    cache.delete(ABANDONED_SWEPT_UNTIL)


def pending(charge_point: ChargePoint, command: str, request: dict, *, age_seconds: float) -> Command:
    made = Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command=command,
        action="GetConfiguration" if command == "get_configuration" else "Reset",
        request=request,
    )
    Command.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(seconds=age_seconds))
    return made


def test_a_command_pending_past_its_timeout_and_the_margin_is_timed_out_and_its_read_owed(register_charge_point):
    WebhookSubscription.objects.create(url="https://example.com/h", events=["command.completed"], secret="s")
    charge_point = register_charge_point("CP-1")
    abandoned_age = settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS + 5
    read = pending(charge_point, "get_configuration", {}, age_seconds=abandoned_age)
    reset = pending(charge_point, "reset", {"type": "Soft"}, age_seconds=abandoned_age)
    recent = pending(charge_point, "reset", {"type": "Hard"}, age_seconds=settings.CSMS_OCPP_CALL_TIMEOUT)

    assert time_out_abandoned_commands() == 2

    for command in (read, reset):
        command.refresh_from_db()
        assert (command.state, command.error_description) == (CommandState.TIMEOUT, ABANDONED)
        assert command.completed_at is not None
    recent.refresh_from_db()
    assert recent.state == CommandState.PENDING
    charge_point.refresh_from_db()
    assert charge_point.configuration_read_owed  # the CSMS's own read after a boot
    events = WebhookSubscription.objects.get().deliveries.values_list("event_type", flat=True)
    assert list(events) == ["command.completed"] * 2
    assert time_out_abandoned_commands() == 0


@override_settings(CSMS_OCPP_CALL_TIMEOUT=3600)
def test_a_call_timeout_of_an_hour_or_more_still_has_its_abandoned_commands_timed_out(register_charge_point):
    """The sweep looked only at the commands made in the last hour: with a call timeout of 59
    minutes or more (CSMS_OCPP_CALL_TIMEOUT allows any), none was ever old enough to be abandoned
    in it, and every command whose process died stayed pending for ever."""
    charge_point = register_charge_point("CP-1")
    reset = pending(charge_point, "reset", {"type": "Soft"}, age_seconds=3600 + ABANDONED_MARGIN_SECONDS + 5)
    in_flight = pending(charge_point, "reset", {"type": "Hard"}, age_seconds=3500)

    assert time_out_abandoned_commands() == 1

    reset.refresh_from_db()
    in_flight.refresh_from_db()
    assert (reset.state, in_flight.state) == (CommandState.TIMEOUT, CommandState.PENDING)


def test_commands_abandoned_while_the_sweep_was_away_for_hours_are_timed_out_when_it_is_back(register_charge_point):
    """Celery beat (or its worker) away for more than an hour: the commands abandoned meanwhile
    were older than the sweep's hour when it came back, and stayed pending for ever. The sweep goes
    on from where it left off."""
    charge_point = register_charge_point("CP-1")
    three_hours_ago = timezone.now() - timedelta(hours=3)
    with mock.patch("commands.services.timezone.now", return_value=three_hours_ago):
        assert time_out_abandoned_commands() == 0  # the last sweep before the outage
    during_the_outage = pending(charge_point, "reset", {"type": "Soft"}, age_seconds=2 * 3600)
    before_the_last_sweep = pending(charge_point, "reset", {"type": "Hard"}, age_seconds=5 * 3600)

    assert time_out_abandoned_commands() == 1

    during_the_outage.refresh_from_db()
    assert (during_the_outage.state, during_the_outage.error_description) == (CommandState.TIMEOUT, ABANDONED)
    before_the_last_sweep.refresh_from_db()
    assert before_the_last_sweep.state == CommandState.PENDING  # that sweep's to complete: not read again
    assert time_out_abandoned_commands() == 0


def test_a_backlog_left_by_a_sweep_is_timed_out_by_the_next_however_late(register_charge_point):
    """A sweep completes 500 at most, the oldest first; the rest are the next sweep's even when
    it comes after they left the hour before its cutoff (a backlog of more than an hour's sweeps)."""
    charge_point = register_charge_point("CP-1")
    oldest, older = (pending(charge_point, "reset", {"type": "Soft"}, age_seconds=age) for age in (3680, 3670))
    with mock.patch("commands.services._ABANDONED_PER_SWEEP", 1):
        assert time_out_abandoned_commands() == 1
    oldest.refresh_from_db()
    assert oldest.state == CommandState.TIMEOUT
    with mock.patch("commands.services.timezone.now", return_value=timezone.now() + timedelta(hours=1)):
        assert time_out_abandoned_commands() == 1
    older.refresh_from_db()
    assert older.state == CommandState.TIMEOUT


def test_a_command_the_sweep_cannot_complete_does_not_hold_it_at_that_command(register_charge_point):
    """A command whose completion raises (its route's handler failing, say) stopped the sweep
    before it recorded where it left off: every later sweep began at that command, oldest first,
    failed on it again, and no command abandoned after it was ever timed out. It is logged and
    passed over; the others are completed and the sweep goes on."""
    charge_point = register_charge_point("CP-1")
    age = settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS
    failing, later = (
        pending(charge_point, "reset", {"type": kind}, age_seconds=age + s) for kind, s in (("Soft", 20), ("Hard", 10))
    )
    from commands import services

    complete = services.command_complete

    def failing_once_for(command, outcome):  # a fault injected into the one command's completion
        if command.pk == failing.pk:
            raise RuntimeError("its route's handler failed")
        return complete(command=command, outcome=outcome)

    with mock.patch("commands.services.command_complete", side_effect=failing_once_for):
        assert time_out_abandoned_commands() == 1
    later.refresh_from_db()
    failing.refresh_from_db()
    assert (later.state, failing.state) == (CommandState.TIMEOUT, CommandState.PENDING)


@pytest.mark.parametrize("subscribed", [True, False])
def test_an_answer_that_comes_while_the_sweep_times_its_command_out_leaves_the_timeout_and_its_one_event(
    behind_a_lock, subscribed
):
    """The process that sent a command was slow to record its answer (its database pool exhausted,
    say), and the sweep timed the command out meanwhile: the answer's UPDATE, waiting for the
    sweep's lock, then overwrote the Timeout with Accepted, and a second ``command.completed`` was
    emitted for the command (the docs promise one). The first completion stands: the late answer
    writes nothing and emits nothing; its caller gets the command as it stands."""
    from commands.rpc import CallOutcome, Outcome
    from commands.services import command_complete

    if subscribed:
        WebhookSubscription.objects.create(url="https://example.com/h", events=["command.completed"], secret="s")
    charge_point = ChargePoint.objects.create(charge_point_id="CP-LATE", heartbeat_interval=60)
    abandoned_age = settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS + 5
    reset = pending(charge_point, "reset", {"type": "Soft"}, age_seconds=abandoned_age)
    answer = CallOutcome(Outcome.RESULT, payload={"status": "Accepted"}, latency_ms=95_000.0)

    swept, answered = behind_a_lock(
        time_out_abandoned_commands,  # holds the command's row until it commits the Timeout
        lambda: command_complete(command=Command.objects.get(pk=reset.pk), outcome=answer),
    )

    assert swept == 1
    reset.refresh_from_db()
    assert (reset.state, reset.error_description) == (CommandState.TIMEOUT, ABANDONED)
    assert answered.state == CommandState.TIMEOUT
    if subscribed:
        events = WebhookSubscription.objects.get().deliveries.values_list("event_type", flat=True)
        assert list(events) == ["command.completed"]


def test_an_answer_after_the_sweep_timed_its_command_out_leaves_the_timeout(register_charge_point):
    from commands.rpc import CallOutcome, Outcome
    from commands.services import command_complete

    WebhookSubscription.objects.create(url="https://example.com/h", events=["command.completed"], secret="s")
    charge_point = register_charge_point("CP-1")
    abandoned_age = settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS + 5
    reset = pending(charge_point, "reset", {"type": "Soft"}, age_seconds=abandoned_age)
    assert time_out_abandoned_commands() == 1

    late = command_complete(command=reset, outcome=CallOutcome(Outcome.RESULT, payload={"status": "Accepted"}))

    assert (late.state, late.error_description) == (CommandState.TIMEOUT, ABANDONED)
    reset.refresh_from_db()
    assert reset.state == CommandState.TIMEOUT
    events = WebhookSubscription.objects.get().deliveries.values_list("event_type", flat=True)
    assert list(events) == ["command.completed"]


def test_a_read_the_sweep_cannot_mark_owed_does_not_lose_the_other_chargers_reads(register_charge_point, caplog):
    """The reads after a boot the sweep timed out are marked owed one charger after the other, once
    their Timeouts are committed and the sweep has moved past them: a charger whose mark raised (a
    deadlock on its row with its own handshake, say) ended the sweep, and every charger after it
    never had its configuration read again (no later sweep finds those commands). It is logged and
    passed over; the others are marked."""
    age = settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS + 5
    chargers = [register_charge_point(charge_point_id) for charge_point_id in ("CP-1", "CP-2")]
    for charge_point in chargers:
        pending(charge_point, "get_configuration", {}, age_seconds=age)
    from configuration import changes

    owed_set = changes.configuration_read_owed_set

    def failing_for_one(*, charge_point_id, channel_name):  # a fault injected into the one charger's mark
        if charge_point_id == "CP-1":
            raise RuntimeError("deadlock detected")
        owed_set(charge_point_id=charge_point_id, channel_name=channel_name)

    with mock.patch("configuration.changes.configuration_read_owed_set", side_effect=failing_for_one):
        assert time_out_abandoned_commands() == 2
    owed = dict(ChargePoint.objects.values_list("charge_point_id", "configuration_read_owed"))
    assert owed == {"CP-1": False, "CP-2": True}
    assert "could not mark the configuration read of CP-1 owed" in caplog.text
