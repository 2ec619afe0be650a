"""Commands a dead process left pending (round 41's probe: a gateway killed with SIGKILL while its
command was in flight left it `pending` for ever, no `command.completed` event, the configuration read
after a boot never owed). Celery beat's sweep, on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from chargepoints.models import ChargePoint
from commands.models import Command, CommandState
from commands.services import ABANDONED, ABANDONED_MARGIN_SECONDS
from ocpp_gateway.tasks import time_out_abandoned_commands
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db


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
