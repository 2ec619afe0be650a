"""The session services' plain statements (PostgreSQL) write and answer what their ORM paths do.

One charger lives through starts, replays, readings, idle time, a start that supersedes a lost
stop, stops, resent and unknown stops, a reservation, and 2.0.1 events in and out of order (an
Ended parked before its Started); once by the plain statements, once by the ORM (the connection
told it is not PostgreSQL). The rows, the answers and the webhook events must be the same.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import Model
from django.test import override_settings

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint
from charging.models import IdTag, MeterSample, ReconciliationItem, Reservation, Transaction
from charging.services.ledger_reads import ledger_readings
from charging.services.meter_ledger import SampledValue, meter_values_record, samples_store
from charging.services.transaction_end import transaction_charging_state_set
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from kernel.plain_sql import copies_gathered
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_subscription_create

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only"),
]

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
STARTED, ENDED, BILLED = "transaction.started", "transaction.ended", "billing_record.created"
# Columns that differ between the two chargers whatever the path: keys, the charger, clocks.
_IGNORED = {"id", "charge_point_id", "created_at", "updated_at", "received_at", "resolved_at", "charge_point_identity"}
# References, given as the referred row's place among the charger's rows (a 1.6 transactionId is a key).
_REFERENCES = {"transaction_id", "reservation_id", "reconciliation_item_id", "ocpp_transaction_id"}


def _register(wh: int, at: datetime, context: str) -> list[SampledValue]:
    return [
        SampledValue(timestamp=at, raw_value=str(wh), context=context),
        SampledValue(timestamp=at, raw_value="7400", measurand="Power.Active.Import", unit="W", context=context),
    ]


class _Charger:
    """The scenario's calls on one charger, each answer recorded in terms that do not depend on keys."""

    def __init__(self, charge_point_id: str) -> None:
        self.id = charge_point_id
        self.answers: list[Any] = []

    def start16(self, connector_id: int, meter_start: int, at: datetime, **extra: Any) -> str:
        result = transaction_start(
            StartRequest(
                charge_point_id=self.id,
                ocpp_version="1.6",
                start_key=f"{connector_id}|tag|{meter_start}|{at.isoformat()}",
                started_at=at,
                connector_id=connector_id,
                id_tag="TAG",
                meter_start_wh=Decimal(meter_start),
                **extra,
            )
        )
        self.answers.append(("start", _ordinal(result.transaction), result.id_tag_info))
        return result.transaction.ocpp_id

    def event201(self, kind: str, transaction_id: str, seq_no: int, wh: int, at: datetime, **extra: Any) -> None:
        context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(kind, "Sample.Periodic")
        samples = _register(wh, at, context)
        if kind == "Ended":
            self.stop(transaction_id, at, action="TransactionEvent", samples=samples, seq_no=seq_no, reason="Local")
            return
        result = transaction_start(
            StartRequest(
                charge_point_id=self.id,
                ocpp_version="2.0.1",
                start_key=transaction_id,
                ocpp_transaction_id=transaction_id,
                started_at=at,
                evse_id=3,
                connector_id=1,
                authorize="id_tag" in extra,
                samples=samples,
                seq_no=seq_no,
                baseline_expected=kind != "Started",
                started_event=kind == "Started",
                **extra,
            )
        )
        self.answers.append((kind, _ordinal(result.transaction), result.id_tag_info))

    def stop(self, ocpp_id: str, at: datetime, *, action: str = "StopTransaction", **extra: Any) -> None:
        result = transaction_stop(
            StopRequest(
                charge_point_id=self.id,
                ocpp_transaction_id=ocpp_id,
                stopped_at=at,
                action=action,
                payload={"transactionId": ocpp_id, "timestamp": at.isoformat()},
                **extra,
            )
        )
        item = result.reconciliation_item
        self.answers.append(("stop", _ordinal(result.transaction), result.id_tag_info, item.reason if item else None))

    def idle(self, connector_id: int, charging: bool, at: datetime) -> None:
        charge_point = ChargePoint.objects.get(charge_point_id=self.id)
        transaction_charging_state_set(
            charge_point=charge_point, connector_id=connector_id, evse_id=None, charging=charging, at=at
        )


def _ordinal(session: Transaction | None) -> int | None:
    """The session's place among its charger's sessions (keys differ between the two runs)."""
    if session is None:
        return None
    return Transaction.objects.filter(charge_point_id=session.charge_point_id, pk__lt=session.pk).count()


def _scenario(charger: _Charger) -> None:
    charge_point = ChargePoint.objects.get(charge_point_id=charger.id)
    Reservation.objects.create(
        charge_point=charge_point, reservation_id=7, connector_id=1, id_tag="TAG", expiry_date=T0 + timedelta(days=1)
    )
    hour = timedelta(hours=1)
    # 1.6: a reserved start and its replay, readings, idle time, a start superseding it, stops.
    first = charger.start16(1, 1000, T0, reservation_id=7)
    charger.start16(1, 1000, T0, reservation_id=7)
    meter_values_record(
        charge_point_id=charger.id,
        connector_id=1,
        ocpp_transaction_id=first,
        samples=_register(1500, T0 + timedelta(minutes=10), "Sample.Periodic"),
    )
    charger.idle(1, False, T0 + timedelta(minutes=15))
    charger.idle(1, False, T0 + timedelta(minutes=20))  # no change: nothing written
    charger.idle(1, True, T0 + timedelta(minutes=25))
    second = charger.start16(1, 2000, T0 + hour)
    charger.stop(first, T0 + hour - timedelta(minutes=1), meter_stop_wh=Decimal(1900))  # late: replaces the close
    charger.stop(second, T0 + 2 * hour, meter_stop_wh=Decimal(3000), id_tag="TAG")
    charger.stop(second, T0 + 2 * hour, meter_stop_wh=Decimal(3000), id_tag="TAG")  # resent
    charger.stop(second, T0 + 3 * hour, meter_stop_wh=Decimal(3100))  # a second stop: parked
    charger.stop("424242", T0 + 3 * hour, meter_stop_wh=Decimal(10))  # unknown: parked
    charger.stop("-1", T0 + 3 * hour, meter_stop_wh=Decimal(10))
    third = charger.start16(2, 500, T0 + hour, reservation_id=7)  # the reservation is used already
    charger.stop(third, T0 + 2 * hour, meter_stop_wh=Decimal("900.5"), id_tag_null=True)
    # 2.0.1: an Ended that overtook its Started; a session's events in and out of order, after its end too.
    charger.event201("Ended", "TX-E", 2, 4000, T0 + 2 * hour)
    charger.event201("Started", "TX-E", 0, 3000, T0, id_tag="TAG", id_token_type="ISO14443")
    charger.event201("Updated", "TX-A", 1, 1200, T0 + 3 * hour + timedelta(minutes=5), charging=False)
    charger.event201("Started", "TX-A", 0, 1000, T0 + 3 * hour, id_tag="TAG", id_token_type="ISO14443")
    charger.event201("Updated", "TX-A", 1, 1200, T0 + 3 * hour + timedelta(minutes=5), charging=False)  # replay
    charger.event201("Updated", "TX-A", 2, 1300, T0 + 3 * hour + timedelta(minutes=9), charging=True)
    charger.event201("Ended", "TX-A", 4, 1500, T0 + 4 * hour)
    charger.event201("Updated", "TX-A", 3, 1400, T0 + 3 * hour + timedelta(minutes=30))  # after the end: repriced
    charger.event201("Started", "TX-A", 0, 100, T0 + 5 * hour, id_tag="TAG", id_token_type="ISO14443")  # id reused


def _rows(model: type[Model], keys: dict[str, dict[Any, int]], **where: Any) -> list[dict]:
    """The charger's rows of ``model`` in key order, references given as the referred row's place."""
    rows = []
    for row in model._default_manager.filter(**where).order_by("pk").values():
        kept = {}
        for name, value in row.items():
            if name in _REFERENCES and not (model is Reservation and name == "reservation_id"):  # its own number
                kept[name] = keys.get(name, {}).get(value, value)
            elif name not in _IGNORED:
                kept[name] = value
        rows.append(kept)
    return rows


def _snapshot(charge_point_id: str) -> dict[str, Any]:
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    keys: dict[str, dict[Any, int]] = {}
    for name, model in (
        ("transaction_id", Transaction),
        ("reservation_id", Reservation),
        ("reconciliation_item_id", ReconciliationItem),
    ):
        pks = model._default_manager.filter(charge_point=charge_point).order_by("pk").values_list("pk", flat=True)
        keys[name] = {pk: place for place, pk in enumerate(pks)}
    keys["ocpp_transaction_id"] = {str(pk): place for pk, place in keys["transaction_id"].items()}
    own = {"charge_point": charge_point}
    sessions = _rows(Transaction, keys, **own)
    return {
        "sessions": sessions,
        "samples": _rows(MeterSample, keys, **own),
        "items": [
            {**item, "payload": {**item["payload"], "transactionId": item["ocpp_transaction_id"]}}
            for item in _rows(ReconciliationItem, keys, **own)
        ],
        "bills": _rows(BillingRecord, keys, transaction__charge_point=charge_point),
        "reservations": _rows(Reservation, keys, **own),
        "events": _events(charge_point_id, keys["transaction_id"]),
    }


def _events(charge_point_id: str, sessions: dict[Any, int]) -> list[tuple[str, dict]]:
    events = []
    for delivery in WebhookDelivery.objects.order_by("created_at"):
        data = json.loads(delivery.body)["data"]
        if data["charge_point_id"] != charge_point_id:
            continue
        data = {k: v for k, v in data.items() if k not in {"charge_point_id", "billing_record_id"}}
        data["transaction_id"] = sessions[data["transaction_id"]]
        if data.get("ocpp_transaction_id", "").isdigit():
            data["ocpp_transaction_id"] = None
        events.append((delivery.event_type, data))
    return events


def _run(
    register_charge_point: Callable[..., ChargePoint], monkeypatch, charge_point_id: str, vendor: str, *, gathered=False
) -> Any:
    """The scenario on a new charger; ``gathered``: all of it in one ``copies_gathered`` block, as
    if every message were in one group-commit batch (the readings a unit may gather wait for the
    block's end, or for a read of the ledger)."""
    register_charge_point(charge_point_id)
    charger = _Charger(charge_point_id)
    with monkeypatch.context() as patched, copies_gathered() if gathered else contextlib.nullcontext():
        if vendor != "postgresql":
            patched.setattr(connection, "vendor", vendor)
        _scenario(charger)
    return charger.answers, _snapshot(charge_point_id)


def test_the_plain_session_statements_write_and_answer_as_the_orm_does(register_charge_point, monkeypatch):
    IdTag.objects.create(id_tag="TAG")
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(
            url="http://127.0.0.1:9/hooks",
            events=[STARTED, ENDED, BILLED],
        )
    plain_answers, plain = _run(register_charge_point, monkeypatch, "CP-PLAIN", "postgresql")
    orm_answers, orm = _run(register_charge_point, monkeypatch, "CP-ORM", "other")
    assert plain_answers == orm_answers
    for table in plain:
        assert plain[table] == orm[table], table
    # The scenario reached what it means to: a reservation used, idle time, a superseded session
    # (closed before the next one started), every kind of parked stop, a parked end applied.
    sessions, items = plain["sessions"], plain["items"]
    assert [reservation["status"] for reservation in plain["reservations"]] == ["used"]
    assert sessions[0]["reservation_id"] == 0 and sessions[0]["idle_seconds"] == 600
    assert [event for event, _ in plain["events"][:4]] == [STARTED, ENDED, BILLED, STARTED]
    assert {(item["reason"], item["state"]) for item in items} == {
        ("already_stopped", "open"),
        ("unknown_transaction", "open"),
        ("invalid_transaction_id", "open"),
        ("null_id_tag", "open"),
        ("unknown_transaction", "attached"),
    }
    assert [session["status"] for session in sessions] == ["ended"] * 5 + ["active"]


def test_readings_gathered_for_the_batch_copy_are_stored_and_counted_as_before(register_charge_point, monkeypatch):
    """MeterValues and 2.0.1 Started/Updated readings wait for the batch's one COPY; a stop, a late
    event of an ended session or a parked end reading the ledger in the same batch sees them."""
    IdTag.objects.create(id_tag="TAG")
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=[STARTED, ENDED, BILLED])
    one_by_one_answers, one_by_one = _run(register_charge_point, monkeypatch, "CP-EACH", "postgresql")
    gathered_answers, gathered = _run(register_charge_point, monkeypatch, "CP-GATHERED", "postgresql", gathered=True)
    assert gathered_answers == one_by_one_answers
    for table in one_by_one:
        if table == "samples":  # the same rows; written later, so in another key order
            assert sorted(map(repr, gathered[table])) == sorted(map(repr, one_by_one[table]))
        else:
            assert gathered[table] == one_by_one[table], table
    assert len(gathered["samples"]) == MeterSample.objects.filter(charge_point__charge_point_id="CP-EACH").count()
    assert any(session["energy_wh"] for session in gathered["sessions"])


def test_the_ledger_read_plainly_is_the_orms(register_charge_point, monkeypatch):
    """Readings at the very edges of the window a stop counts (10 min either side), just outside,
    phases, other measurands and another session's: the same readings, in the same order. (A meter
    start of 0: a meter start that tells where the register stood bounds the window at the start.)"""
    charge_point = register_charge_point("CP-LEDGER")
    session, other = (
        Transaction.objects.create(
            charge_point=charge_point, ocpp_version="1.6", start_key=key, started_at=T0, meter_start_wh=Decimal(0)
        )
        for key in ("a", "b")
    )
    session.stopped_at = T0 + timedelta(hours=1)
    edge = timedelta(minutes=10)
    stamps = [T0 - edge - timedelta(microseconds=1), T0 - edge, T0, T0 + timedelta(hours=1) + edge]
    stamps.append(stamps[-1] + timedelta(microseconds=1))
    samples = [
        SampledValue(timestamp=at, raw_value=str(200 + n), phase=phase, context=context)
        for n, at in enumerate(stamps)
        for phase, context in (("", "Sample.Periodic"), ("L1", "Sample.Clock"), ("L2", "Sample.Clock"))
    ]
    samples.append(SampledValue(timestamp=T0, raw_value="7400", measurand="Power.Active.Import", unit="W"))
    samples_store(charge_point.pk, session, samples, source="MeterValues")
    samples_store(charge_point.pk, other, samples[:3], source="MeterValues")
    plain = ledger_readings(session)
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        orm = ledger_readings(session)
    assert plain == orm
    assert len(plain) == 1 + 3 * 2  # the meter start, then two readings at each stamp inside the window


def test_ledger_rows_copied_are_the_rows_bulk_create_stores(register_charge_point, monkeypatch):
    """``samples_store`` writes plain rows (``SampleRow``) with one COPY: signed data, an
    unreadable value, a scaled unit, a replaced charger time and a parked stop's item are stored as
    the ORM stores the same rows."""
    charge_point = register_charge_point("CP-ROWS")
    session = Transaction.objects.create(charge_point=charge_point, ocpp_version="2.0.1", start_key="r", started_at=T0)
    parked = ReconciliationItem.objects.create(
        charge_point=charge_point, reason="unknown_transaction", action="StopTransaction", payload={}, received_at=T0
    )
    samples = [
        SampledValue(
            timestamp=T0, raw_value="12.5", unit="kWh", multiplier=1, context="Sample.Clock", location="Outlet"
        ),
        SampledValue(timestamp=T0, raw_value="garbled", phase="L1", format="Raw"),
        SampledValue(
            timestamp=T0, raw_value="AB12", format="SignedData", signed_data={"format": "SignedData", "value": "AB12"}
        ),
        SampledValue(timestamp=T0, raw_value="7", charger_timestamp=T0 - timedelta(days=400), clock_implausible=True),
    ]

    def stored(source: str, item: ReconciliationItem | None) -> list[dict[str, Any]]:
        samples_store(charge_point.pk, session if item is None else None, samples, source=source, parked=item)
        rows = MeterSample.objects.filter(source=source).order_by("id")
        return [
            {k: v for k, v in row.__dict__.items() if k not in ("_state", "id", "source", "received_at")}
            for row in rows
        ]

    copied = stored("copied", None), stored("copied-parked", parked)
    with monkeypatch.context() as patched:
        patched.setattr(connection, "vendor", "other")
        created = stored("created", None), stored("created-parked", parked)
    assert copied == created
    assert copied[1][0]["reconciliation_item_id"] == parked.pk and copied[0][0]["transaction_id"] == session.pk
