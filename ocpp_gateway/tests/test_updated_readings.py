"""A 2.0.1 TransactionEvent(Updated) of a session its connection keeps is recorded without
``transaction_start`` (issue 15, round 19: ``meter_ledger.transaction_updated_record``), and
writes what ``transaction_start`` writes: the session's columns, its ledger rows, its seqNos, the
answer; an event it cannot tell (a token, a time before the start, a session not kept) goes the
full way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import sync_to_async

from charging.models import MeterSample, Transaction
from charging.services import transaction_start as start_module
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import connection_context, one_batch
from ocpp_gateway.v201.transactions import _transaction_event

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _event(kind: str, seq_no: int, wh: int, at: datetime, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": at.isoformat(),
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": "TX-U", "chargingState": "SuspendedEV" if seq_no == 2 else "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": at.isoformat(),
                "sampledValue": [
                    {"value": wh, "context": "Transaction.Begin" if kind == "Started" else "Sample.Periodic"},
                    {"value": 7200, "measurand": "Power.Active.Import"},
                ],
            }
        ],
        **extra,
    }
    if kind == "Started":
        payload["idToken"] = {"idToken": "TAG", "type": "ISO14443"}
    return payload


_EVENTS = [
    _event("Updated", 1, 1500, T0 + timedelta(minutes=1)),
    _event("Updated", 2, 2000, T0 + timedelta(minutes=2)),  # SuspendedEV: idle from here
    _event("Updated", 2, 2000, T0 + timedelta(minutes=2)),  # a replay: adds nothing
    _event("Updated", 4, 2600, T0 + timedelta(minutes=4), transactionInfo={"transactionId": "TX-U"}),
    _event("Updated", 3, 2300, T0 + timedelta(minutes=3)),  # late, Charging again: the idle time counted
]


@sync_to_async
def _written(charge_point_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    session = Transaction.objects.get(charge_point__charge_point_id=charge_point_id)
    columns = {
        field.attname: getattr(session, field.attname)
        for field in Transaction._meta.concrete_fields
        if field.attname not in ("id", "charge_point_id", "created_at", "updated_at")
    }
    samples = MeterSample.objects.filter(transaction=session).order_by("id")
    rows = [(s.source, s.timestamp, s.measurand, s.context, s.raw_value, s.value, s.unit) for s in samples]
    return columns, rows


async def _session_lived(register_charge_point: Any, name: str, *, kept: bool) -> list[Any]:
    """Started, then ``_EVENTS``, each in a batch of its own on one connection (``kept``: the
    connection keeps the session; else each event from a new connection, which keeps none)."""
    await sync_to_async(register_charge_point)(name)
    group = CommitGroup(max_units=64)
    context = connection_context()
    (started,) = await one_batch(
        group, (context, _transaction_event, {"charge_point_id": name, "payload": _event("Started", 0, 1000, T0)})
    )
    assert not isinstance(started, Exception)
    answers = []
    for payload in _EVENTS:
        unit_context = context if kept else connection_context()
        (answer,) = await one_batch(
            group, (unit_context, _transaction_event, {"charge_point_id": name, "payload": payload})
        )
        answers.append(answer)
    return answers


async def test_a_kept_sessions_updated_events_write_what_the_full_way_writes(register_charge_point):
    with mock.patch("ocpp_gateway.v201.transactions.transaction_start", wraps=start_module.transaction_start) as spy:
        lean_answers = await _session_lived(register_charge_point, "CP-UR-1", kept=True)
        # The Started and the replay (a seen seqNo with readings: a restarted counter or a resend,
        # which the full way tells apart); every other Updated of the kept session went the lean way.
        assert spy.call_count == 2
        spy.reset_mock()
        full_answers = await _session_lived(register_charge_point, "CP-UR-2", kept=False)
        assert spy.call_count == 1 + len(_EVENTS)
    assert lean_answers == full_answers == [{}] * len(_EVENTS)
    (lean_columns, lean_rows), (full_columns, full_rows) = await _written("CP-UR-1"), await _written("CP-UR-2")
    assert lean_columns == full_columns
    assert lean_columns["seq_nos"] == [[0, 4]] and lean_columns["idle_seconds"] == 60
    assert lean_rows == full_rows and len(lean_rows) == 2 * (1 + len(_EVENTS) - 1)


async def test_an_updated_event_with_a_token_or_before_its_start_goes_the_full_way(register_charge_point):
    await sync_to_async(register_charge_point)("CP-UR-3")
    group = CommitGroup(max_units=64)
    context = connection_context()
    await one_batch(
        group, (context, _transaction_event, {"charge_point_id": "CP-UR-3", "payload": _event("Started", 0, 1000, T0)})
    )
    token = _event("Updated", 1, 1500, T0 + timedelta(minutes=1), idToken={"idToken": "TAG", "type": "ISO14443"})
    early = _event("Updated", 2, 900, T0 - timedelta(minutes=1))  # before the start: judged the full way
    with mock.patch("ocpp_gateway.v201.transactions.transaction_start", wraps=start_module.transaction_start) as spy:
        for payload in (token, early):
            await one_batch(group, (context, _transaction_event, {"charge_point_id": "CP-UR-3", "payload": payload}))
    assert spy.call_count == 2
    columns, _ = await _written("CP-UR-3")
    # After its Started in the charger's sequence: a clock's glitch, which moves neither start nor meter start.
    assert columns["started_at"] == T0 and columns["meter_start_wh"] == 1000


async def test_a_kept_sessions_state_only_updated_whose_seq_no_a_reboot_restarted_is_applied(register_charge_point):
    """A state-only Updated (no meter values) repeating a seqNo of before its charger's reboot,
    stamped after it: the lean way dropped it as a replay (idle time never billed); it goes the
    full way, which tells a restarted counter from a copy by the boot."""
    from django.utils import timezone

    from chargepoints.models import ChargePoint
    from charging.services.open_sessions import open_sessions_load

    name = "CP-UR-4"
    await sync_to_async(register_charge_point)(name)
    group = CommitGroup(max_units=64)
    context = connection_context()
    base = timezone.now().replace(microsecond=0) - timedelta(hours=1)

    def state(kind: str, seq_no: int, minute: int, charging_state: str) -> dict[str, Any]:
        at = (base + timedelta(minutes=minute)).isoformat()
        payload = _event(kind, seq_no, 1000 + minute, base + timedelta(minutes=minute))
        payload["transactionInfo"] = {"transactionId": "TX-U", "chargingState": charging_state}
        if kind == "Updated":
            del payload["meterValue"]
        payload["timestamp"] = at
        return payload

    async def send(payload: dict[str, Any]) -> None:
        (answer,) = await one_batch(group, (context, _transaction_event, {"charge_point_id": name, "payload": payload}))
        assert not isinstance(answer, Exception)

    await send(state("Started", 0, 0, "Charging"))
    await send(state("Updated", 1, 5, "Charging"))

    @sync_to_async
    def reboot() -> None:
        Transaction.objects.filter(charge_point__charge_point_id=name).update(created_at=base)
        ChargePoint.objects.filter(charge_point_id=name).update(last_boot_at=base + timedelta(minutes=20))

    await reboot()
    context = connection_context()  # the charger reconnects after its boot: its handshake keeps the session
    await one_batch(group, (context, open_sessions_load, {"charge_point_id": name}))
    await send(state("Updated", 1, 30, "SuspendedEV"))
    await send(state("Ended", 2, 40, "EVConnected"))
    columns, _ = await _written(name)
    assert (columns["status"], columns["idle_seconds"]) == ("ended", 600)
