"""A command the CSMS sends of its own accord (the configuration read after a boot): recorded,
then completed by the plain UPDATE (PostgreSQL) as by the ORM's save."""

from __future__ import annotations

import pytest
from django.db import connection

from commands.models import Command, CommandState
from commands.rpc import CallOutcome, Outcome
from commands.services import command_complete, command_record_own

pytestmark = pytest.mark.django_db

OUTCOMES = [
    CallOutcome(
        Outcome.RESULT, payload={"configurationKey": [{"key": "A", "readonly": False, "value": "1"}]}, latency_ms=12.5
    ),
    CallOutcome(Outcome.CALL_ERROR, error_code="NotImplemented", error_description="no", latency_ms=3.0),
]


def _stored(command: Command) -> dict:
    stored = Command.objects.get(pk=command.pk)
    return {field.attname: getattr(stored, field.attname) for field in Command._meta.concrete_fields}


@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_an_own_command_is_recorded_pending_without_warnings(register_charge_point, monkeypatch, vendor):
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    if vendor != connection.vendor:
        if connection.vendor != "postgresql":
            pytest.skip("plain statements are PostgreSQL only")
        monkeypatch.setattr(connection, "vendor", vendor)
    command = command_record_own(charge_point=charge_point, command="get_configuration", body={})
    monkeypatch.undo()
    stored = Command.objects.get(pk=command.pk)
    assert (stored.state, stored.action, stored.ocpp_version, stored.warnings) == (
        CommandState.PENDING,
        "GetConfiguration",
        "1.6",
        [],
    )
    assert (stored.charge_point_identity, stored.request, stored.api_key_id) == ("CP-1", {}, None)
    assert stored.requested_by == "csms"
    assert stored.created_at == command.created_at and not command._state.adding


@pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only")
@pytest.mark.parametrize("outcome", OUTCOMES, ids=["result", "call_error"])
def test_completing_by_the_plain_update_stores_what_the_orm_stores(register_charge_point, monkeypatch, outcome):
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    plain, orm = (command_record_own(charge_point=charge_point, command="get_configuration", body={}) for _ in "ab")
    command_complete(command=plain, outcome=outcome)
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        command_complete(command=orm, outcome=outcome)
    ignored = {"id", "created_at", "completed_at"}
    assert {k: v for k, v in _stored(plain).items() if k not in ignored} == {
        k: v for k, v in _stored(orm).items() if k not in ignored
    }
    assert _stored(plain)["completed_at"] == plain.completed_at
