"""The sessions API: id tags, transactions and their meter values, a charger's tariff."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncRequestFactory
from django.utils import timezone

from billing.models import Tariff
from chargepoints.models import ChargePoint
from charging import views
from charging.metering import measurand_of
from charging.models import IdTag, Reservation, Transaction
from charging.serializers import MeterSampleSerializer
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from charging.views import TransactionViewSet
from kernel.timestamps import format_ocpp_time

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_start_keys = itertools.count()


def start(
    charge_point_id: str, *, at: datetime = T0, id_tag: str = "TAG-1", meter_start: int = 1000, **extra
) -> Transaction:
    """A 1.6 session on a known token."""
    if not IdTag.objects.filter(id_tag__iexact=id_tag).exists():
        IdTag.objects.create(id_tag=id_tag)
    return transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"key-{next(_start_keys)}",
            started_at=at,
            connector_id=1,
            id_tag=id_tag,
            meter_start_wh=Decimal(meter_start),
            **extra,
        )
    ).transaction


def stop(session: Transaction, *, meter_stop: int, at: datetime | None = None) -> Transaction | None:
    return transaction_stop(
        StopRequest(
            charge_point_id=session.charge_point.charge_point_id,
            ocpp_transaction_id=session.ocpp_id,
            stopped_at=at or session.started_at + timedelta(hours=1),
            action="StopTransaction",
            payload={},
            meter_stop_wh=Decimal(meter_stop),
            reason="Local",
            id_tag=session.id_tag,
        )
    ).transaction


@pytest.fixture
def default_tariff(db) -> Tariff:
    return Tariff.objects.create(name="Standard", currency="EUR", price_per_kwh=Decimal("0.40"), is_default=True)


# --- Id tags ------------------------------------------------------------------------------------


def test_an_id_tag_is_created_read_changed_and_deleted(api_client):
    created = api_client.post(
        "/api/v1/id-tags/",
        {"id_tag": "CARD-0001", "token_type": "ISO14443", "expiry_date": "2027-01-01T00:00:00Z", "description": "Van"},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert {key: body[key] for key in body if key not in ("created_at", "updated_at")} == {
        "id_tag": "CARD-0001",
        "token_type": "ISO14443",
        "status": "Accepted",
        "answered_status": "Accepted",
        "expiry_date": "2027-01-01T00:00:00Z",
        "parent_id_tag": None,
        "description": "Van",
        "max_concurrent_sessions": None,
    }
    assert api_client.get("/api/v1/id-tags/CARD-0001").json() == body
    assert api_client.get("/api/v1/id-tags").json()["count"] == 1

    changed = api_client.patch("/api/v1/id-tags/CARD-0001/", {"status": "Blocked"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["status"] == "Blocked"
    assert IdTag.objects.get().status == "Blocked"

    assert api_client.delete("/api/v1/id-tags/CARD-0001").status_code == 204
    assert not IdTag.objects.exists()


def test_an_id_tag_is_found_whatever_the_case_of_the_url(api_client):
    IdTag.objects.create(id_tag="Card-A")
    for url in ("/api/v1/id-tags/card-a", "/api/v1/id-tags/CARD-A/"):
        response = api_client.get(url)
        assert response.status_code == 200, url
        assert response.json()["id_tag"] == "Card-A"


@pytest.mark.parametrize("url_tag", ["acme/0001", "ACME%2F0001", "acme/0001/"])
def test_an_id_tag_with_a_slash_is_read_changed_and_deleted_through_its_url(api_client, url_tag):
    """The API registers any tag without whitespace, '/' included (OCPP's idTag is any data): its
    URL reached no endpoint, so a lost card registered so could not be blocked through the API."""
    assert api_client.post("/api/v1/id-tags/", {"id_tag": "ACME/0001"}, format="json").status_code == 201
    assert api_client.get(f"/api/v1/id-tags/{url_tag}").json()["id_tag"] == "ACME/0001"
    changed = api_client.patch(f"/api/v1/id-tags/{url_tag}", {"status": "Blocked"}, format="json")
    assert (changed.status_code, changed.json()["status"]) == (200, "Blocked")
    assert api_client.delete(f"/api/v1/id-tags/{url_tag}").status_code == 204
    assert not IdTag.objects.exists()


@pytest.mark.parametrize("id_tag", ["ABC/", ".", ".."])
def test_an_id_tag_its_url_cannot_name_is_refused_naming_the_field(api_client, id_tag):
    """``/id-tags/ABC%2F`` arrives as ``/id-tags/ABC/``, the tag ``ABC`` (a GET, PATCH or DELETE meant
    for it acted on another tag; review); HTTP clients resolve ``.`` and ``..`` out of a URL (round
    48's probe: a tag ``.`` could be created, never changed nor deleted)."""
    response = api_client.post("/api/v1/id-tags/", {"id_tag": id_tag}, format="json")
    assert response.status_code == 400
    assert "id_tag" in response.json()["details"]
    assert not IdTag.objects.exists()


def test_an_id_tag_differing_only_in_case_is_a_conflict(api_client):
    IdTag.objects.create(id_tag="CARD-A")
    response = api_client.post("/api/v1/id-tags/", {"id_tag": "card-a"}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "error": "Conflict",
        "message": "Id tag 'card-a' is already registered (id tags ignore case).",
        "id_tag": "card-a",
    }
    assert IdTag.objects.count() == 1


def test_renaming_an_id_tag_onto_another_is_a_conflict(api_client):
    IdTag.objects.create(id_tag="CARD-A")
    IdTag.objects.create(id_tag="CARD-B")
    response = api_client.patch("/api/v1/id-tags/CARD-B", {"id_tag": "Card-A"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"
    assert sorted(IdTag.objects.values_list("id_tag", flat=True)) == ["CARD-A", "CARD-B"]


def test_the_parent_is_named_by_its_id_tag_in_any_case(api_client):
    IdTag.objects.create(id_tag="FLEET-1")
    response = api_client.post("/api/v1/id-tags", {"id_tag": "CARD-1", "parent_id_tag": "fleet-1"}, format="json")
    assert response.status_code == 201
    assert response.json()["parent_id_tag"] == "FLEET-1"
    assert IdTag.objects.get(id_tag="CARD-1").parent.id_tag == "FLEET-1"
    cleared = api_client.patch("/api/v1/id-tags/CARD-1", {"parent_id_tag": None}, format="json")
    assert cleared.json()["parent_id_tag"] is None


def test_an_unknown_parent_is_a_400_naming_the_field(api_client):
    response = api_client.post("/api/v1/id-tags/", {"id_tag": "CARD-1", "parent_id_tag": "NOBODY"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert response.json()["details"] == {"parent_id_tag": ["No id tag 'NOBODY' is registered."]}


def test_an_id_tag_cannot_be_its_own_parent(api_client):
    IdTag.objects.create(id_tag="CARD-1")
    response = api_client.patch("/api/v1/id-tags/CARD-1", {"parent_id_tag": "card-1"}, format="json")
    assert response.status_code == 400
    assert "parent_id_tag" in response.json()["details"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "Accepted"}, "id_tag"),
        ({"id_tag": ""}, "id_tag"),
        ({"id_tag": "HAS SPACE"}, "id_tag"),
        ({"id_tag": " LEADING"}, "id_tag"),
        ({"id_tag": "CARD\u200b1"}, "id_tag"),  # a zero-width space: looks like CARD1, no card sends it
        ({"id_tag": "CARD\x011"}, "id_tag"),
        ({"id_tag": "CARD\u00a01"}, "id_tag"),
        ({"id_tag": "X" * 37}, "id_tag"),
        ({"id_tag": "CARD-1", "status": "ConcurrentTx"}, "status"),
        ({"id_tag": "CARD-1", "token_type": "Barcode"}, "token_type"),
        ({"id_tag": "CARD-1", "expiry_date": "next year"}, "expiry_date"),
        ({"id_tag": "CARD-1", "parent_id_tag": 7}, "parent_id_tag"),
    ],
)
def test_a_bad_id_tag_body_is_a_400_naming_the_field(api_client, body, field):
    response = api_client.post("/api/v1/id-tags/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert field in response.json()["details"]


def test_a_36_character_id_token_is_accepted(api_client):
    assert api_client.post("/api/v1/id-tags/", {"id_tag": "X" * 36}, format="json").status_code == 201


def test_unknown_id_tags_are_404(api_client):
    for method in ("get", "patch", "put", "delete"):
        response = getattr(api_client, method)("/api/v1/id-tags/NOPE", {}, format="json")
        assert response.status_code == 404, method
        assert response.json() == {"error": "NotFound", "message": "Id tag 'NOPE' is not registered.", "id_tag": "NOPE"}


# --- Transactions -------------------------------------------------------------------------------


def test_an_ended_session_has_every_field_and_its_billing_summary(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-1", ocpp_version="1.6")
    Reservation.objects.create(
        charge_point=ChargePoint.objects.get(),
        reservation_id=7,
        connector_id=1,
        id_tag="TAG-1",
        expiry_date=T0 + timedelta(hours=1),
    )
    session = stop(start("CP-1", reservation_id=7, remote_start_id=42), meter_stop=11000)

    response = api_client.get(f"/api/v1/transactions/{session.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": session.pk,
        "transaction_id": str(session.pk),
        "charge_point_id": "CP-1",
        "ocpp_version": "1.6",
        "evse_id": None,
        "connector_id": 1,
        "id_tag": "TAG-1",
        "id_tag_status": "Accepted",
        "stop_id_tag": "TAG-1",
        "status": "ended",
        "started_at": "2026-05-01T10:00:00Z",
        "stopped_at": "2026-05-01T11:00:00Z",
        "meter_start_wh": 1000,
        "meter_stop_wh": 11000,
        "energy_wh": 10000,
        "stop_reason": "Local",
        "closed_by_csms": False,
        "idle_seconds": 0,
        "reservation_id": 7,
        "remote_start_id": 42,
        "anomalies": [],
        "needs_review": False,
        "billing_record": {"id": session.billing_record.pk, "currency": "EUR", "total": "4.00"},
    }
    assert b'"energy_wh":10000,' in response.content


def test_fractional_energy_is_a_json_float_and_a_201_session_keeps_its_own_id(api_client, register_charge_point):
    charge_point = register_charge_point("CP-1", ocpp_version="2.0.1")
    session = Transaction.objects.create(
        charge_point=charge_point,
        ocpp_version="2.0.1",
        ocpp_transaction_id="c0ffee-42",
        start_key="c0ffee-42",
        evse_id=1,
        connector_id=1,
        started_at=T0,
        meter_start_wh=Decimal("0.500"),
        energy_wh=Decimal("10000.500"),
        anomalies=["fractional_wh"],
    )
    body = api_client.get(f"/api/v1/transactions/{session.pk}/").json()
    assert (body["transaction_id"], body["status"], body["stopped_at"]) == ("c0ffee-42", "active", None)
    assert body["meter_start_wh"] == 0.5
    assert body["energy_wh"] == 10000.5
    assert body["meter_stop_wh"] is None
    assert body["reservation_id"] is None
    assert body["billing_record"] is None
    assert body["anomalies"] == ["fractional_wh"]


def test_transactions_are_listed_newest_first_and_filtered(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-A")
    register_charge_point("CP-B")
    old = stop(start("CP-A", at=T0 - timedelta(days=1)), meter_stop=2000)
    active = start("CP-A", at=T0)
    other = stop(start("CP-B", at=T0 + timedelta(hours=2)), meter_stop=3000)

    def ids(query: str = "") -> list[int]:
        response = api_client.get(f"/api/v1/transactions/{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [other.pk, active.pk, old.pk]
    assert ids("?charge_point_id=CP-A") == [active.pk, old.pk]
    assert ids("?charge_point_id=NOBODY") == []
    assert ids("?status=active") == [active.pk]
    assert ids("?status=ended") == [other.pk, old.pk]
    assert ids("?started_after=2026-05-01T10:00:00Z") == [other.pk, active.pk]
    assert ids("?started_before=2026-05-01T10:00:00Z") == [old.pk]
    assert ids("?started_after=2026-05-01T11:00:00%2B02:00&started_before=2026-05-01T12:00:00Z") == [active.pk]
    assert ids("?charge_point_id=CP-A&status=ended") == [old.pk]


def test_a_transaction_filter_given_empty_is_applied_not_dropped(api_client, register_charge_point):
    """``?charge_point_id=`` (a client's unset variable) answered every charger's sessions, taken for
    one charger's; ``?status=`` and ``?started_after=`` the whole list too, where ``?state=`` of the
    commands and ``?connected=`` of the fleet are a 400 (the schema gives status a minLength of 1)."""
    register_charge_point("CP-A")
    start("CP-A")
    listed = api_client.get("/api/v1/transactions/?charge_point_id=")
    assert listed.status_code == 200 and listed.json()["results"] == []
    for param in ("status", "started_after", "started_before"):
        response = api_client.get(f"/api/v1/transactions/?{param}=")
        assert response.status_code == 400, param
        assert list(response.json()["details"]) == [param]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=running", "status"),
        ("started_after=yesterday", "started_after"),
        ("started_before=2026-13-01T00:00:00Z", "started_before"),
    ],
)
def test_a_bad_transaction_filter_is_a_400_naming_it(api_client, query, param):
    response = api_client.get(f"/api/v1/transactions/?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert list(response.json()["details"]) == [param]


def test_unknown_transactions_are_404(api_client):
    for url in (
        "/api/v1/transactions/999999",
        "/api/v1/transactions/not-a-number",
        "/api/v1/transactions/99999999999999999999999",
        "/api/v1/transactions/999999/meter-values",
    ):
        response = api_client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == "NotFound"


def test_transactions_are_read_only(api_client, register_charge_point):
    register_charge_point("CP-1")
    session = start("CP-1")
    assert api_client.post("/api/v1/transactions/", {}, format="json").status_code == 405
    assert api_client.delete(f"/api/v1/transactions/{session.pk}").status_code == 405


def test_meter_values_are_every_sample_as_received_with_its_base_unit_value(api_client, register_charge_point):
    register_charge_point("CP-1")
    session = start(
        "CP-1",
        samples=[SampledValue(timestamp=T0, raw_value="1.5", unit="kWh", context="Transaction.Begin")],
    )
    meter_values_record(
        charge_point_id="CP-1",
        ocpp_transaction_id=session.ocpp_id,
        connector_id=1,
        samples=[
            SampledValue(timestamp=T0 + timedelta(minutes=5), raw_value="2500.25"),
            SampledValue(
                timestamp=T0 + timedelta(minutes=5),
                raw_value="7.2",
                measurand="Power.Active.Import",
                unit="kW",
                phase="L1",
                location="Outlet",
                context="Sample.Periodic",
            ),
        ],
    )

    response = api_client.get(f"/api/v1/transactions/{session.pk}/meter-values/")

    assert response.status_code == 200
    samples = streamed_json(response)
    assert [(s["measurand"], s["raw_value"], s["unit"], s["value"], s["source"]) for s in samples] == [
        ("Energy.Active.Import.Register", "1.5", "kWh", 1500, "TransactionEvent"),
        ("Energy.Active.Import.Register", "2500.25", "Wh", 2500.25, "MeterValues"),
        ("Power.Active.Import", "7.2", "kW", 7200, "MeterValues"),
    ]
    assert samples[2] == {
        "timestamp": "2026-05-01T10:05:00Z",
        "measurand": "Power.Active.Import",
        "phase": "L1",
        "unit": "kW",
        "multiplier": 0,
        "context": "Sample.Periodic",
        "location": "Outlet",
        "format": "",
        "raw_value": "7.2",
        "signed_data": None,
        "value": 7200,
        "value_unit": "W",
        "source": "MeterValues",
    }


def test_meter_values_state_the_unit_their_value_is_in(api_client, register_charge_point):
    """A value is normalised (kWh to Wh, a 2.0.1 multiplier applied) but the row named only the unit
    sent: ``"unit": "kWh", "value": 1500`` read as 1,500 kWh, ``"multiplier": 2, "value": 6500`` as
    650,000 Wh. ``value_unit`` says what the value is in; kVAh (2.0.1 Energy.Apparent) is scaled too."""
    register_charge_point("CP-1")
    session = start("CP-1")
    at = T0 + timedelta(minutes=5)
    sent = [
        SampledValue(timestamp=at, raw_value="1.5", unit="kWh"),
        SampledValue(timestamp=at, raw_value="65", unit="Wh", multiplier=2, measurand="Energy.Active.Export.Register"),
        SampledValue(timestamp=at, raw_value="2", unit="kVAh", measurand="Energy.Apparent.Import"),
        SampledValue(timestamp=at, raw_value="0.5", unit="KVARH", measurand="Energy.Reactive.Import.Register"),
        SampledValue(timestamp=at, raw_value="55", unit="Percent", measurand="SoC", location="EV"),
    ]
    meter_values_record(charge_point_id="CP-1", ocpp_transaction_id=session.ocpp_id, connector_id=1, samples=sent)

    samples = streamed_json(api_client.get(f"/api/v1/transactions/{session.pk}/meter-values"))

    assert [(s["unit"], s["value"], s["value_unit"]) for s in samples] == [
        ("kWh", 1500, "Wh"),
        ("Wh", 6500, "Wh"),
        ("kVAh", 2000, "VAh"),
        ("KVARH", 500, "varh"),
        ("Percent", 55, "Percent"),
    ]


def test_an_energy_register_labelled_in_a_power_unit_states_its_value_in_wh(api_client, register_charge_point):
    """A register sent in ``kW`` (or ``W``), with or without its measurand, is read and billed in kWh
    (Wh): its ``value_unit`` said ``W``, a power, for the register's 512,300 Wh."""
    register_charge_point("CP-1")
    session = start("CP-1")
    at = T0 + timedelta(minutes=5)
    sent = [
        SampledValue(timestamp=at, raw_value="512.3", unit="kW", measurand=measurand_of(None, "kW")),
        SampledValue(timestamp=at, raw_value="512300", unit="W", measurand="Energy.Active.Import.Register"),
        SampledValue(timestamp=at, raw_value="2", unit="kvar", measurand="Energy.Reactive.Import.Register"),
        SampledValue(timestamp=at, raw_value="7.2", unit="kW", measurand="Power.Active.Import"),
    ]
    meter_values_record(charge_point_id="CP-1", ocpp_transaction_id=session.ocpp_id, connector_id=1, samples=sent)

    samples = streamed_json(api_client.get(f"/api/v1/transactions/{session.pk}/meter-values"))

    assert [(s["unit"], s["value"], s["value_unit"]) for s in samples] == [
        ("kW", 512300, "Wh"),
        ("W", 512300, "Wh"),
        ("kvar", 2000, "varh"),
        ("kW", 7200, "W"),
    ]


def test_a_session_without_samples_has_an_empty_meter_values_list(api_client, register_charge_point):
    register_charge_point("CP-1")
    session = start("CP-1")
    assert streamed_json(api_client.get(f"/api/v1/transactions/{session.pk}/meter-values")) == []


def streamed_json(response: Any) -> Any:
    assert response.streaming and response["Content-Type"] == "application/json"
    return json.loads(b"".join(response.streaming_content))


def test_meter_values_stream_a_chunk_of_rows_at_a_time_as_one_json_array(
    api_key, api_client, register_charge_point, monkeypatch
):
    """A week-long session holds hundreds of thousands of samples: the array is streamed (under
    ASGI from an async iterator, Django buffering a synchronous one whole), never built in memory
    (300,000 samples took 0.9 GB of the API process)."""
    monkeypatch.setattr(views, "_SAMPLES_CHUNK", 2)
    register_charge_point("CP-1")
    session = start("CP-1")
    readings = [SampledValue(timestamp=T0 + timedelta(minutes=m), raw_value=str(1000 + m)) for m in range(1, 6)]
    meter_values_record(charge_point_id="CP-1", ocpp_transaction_id=session.ocpp_id, connector_id=1, samples=readings)
    expected = MeterSampleSerializer(session.meter_samples.order_by("timestamp", "id"), many=True).data
    assert len(expected) == 5  # three chunks of two at most

    assert streamed_json(api_client.get(f"/api/v1/transactions/{session.pk}/meter-values")) == expected
    request = AsyncRequestFactory().get(
        f"/api/v1/transactions/{session.pk}/meter-values", headers={"Authorization": f"Bearer {api_key}"}
    )
    response = TransactionViewSet.as_view({"get": "meter_values"})(request, pk=str(session.pk))
    assert response.status_code == 200 and response.is_async

    async def body() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    chunks = async_to_sync(body)()
    assert json.loads(chunks) == expected


# --- A charger's tariff and history ----------------------------------------------------------


def test_a_charger_gets_and_loses_its_own_tariff(api_client, register_charge_point):
    register_charge_point("CP-1")
    tariff = Tariff.objects.create(name="Depot", currency="EUR", price_per_kwh=Decimal("0.25"))
    assert api_client.get("/api/v1/chargepoints/CP-1").json()["tariff"] is None

    response = api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": tariff.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["tariff"] == tariff.pk
    assert ChargePoint.objects.get().tariff == tariff

    unchanged = api_client.patch("/api/v1/chargepoints/CP-1", {"heartbeat_interval": 90}, format="json")
    assert unchanged.json()["tariff"] == tariff.pk

    cleared = api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": None}, format="json")
    assert cleared.json()["tariff"] is None
    assert ChargePoint.objects.get().tariff is None


def test_a_charger_can_be_registered_with_a_tariff(api_client):
    tariff = Tariff.objects.create(name="Depot", currency="EUR")
    response = api_client.post("/api/v1/chargepoints/", {"charge_point_id": "CP-1", "tariff": tariff.pk}, format="json")
    assert response.status_code == 201
    assert response.json()["tariff"] == tariff.pk
    assert ChargePoint.objects.get().tariff == tariff


def test_an_unknown_tariff_is_a_400_naming_the_field(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": 999999}, format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["tariff"]


def test_a_charger_with_sessions_cannot_be_deleted(api_client, register_charge_point):
    register_charge_point("CP-1")
    start("CP-1")
    response = api_client.delete("/api/v1/chargepoints/CP-1")
    assert response.status_code == 409
    assert response.json() == {
        "error": "Conflict",
        "message": "Charge point 'CP-1' has transactions or reconciliation items; decommission it instead.",
        "charge_point_id": "CP-1",
    }
    assert ChargePoint.objects.filter(charge_point_id="CP-1").exists()


def test_a_parent_id_tag_is_not_deleted_from_under_its_cards_nor_made_their_child(api_client):
    """Deleting a Blocked fleet account set its cards' parent to none: they charged again."""
    for body in ({"id_tag": "FLEET", "status": "Blocked"}, {"id_tag": "CARD", "parent_id_tag": "FLEET"}):
        assert api_client.post("/api/v1/id-tags/", body, format="json").status_code == 201
    refused = api_client.delete("/api/v1/id-tags/FLEET")
    assert (refused.status_code, refused.json()["error"]) == (409, "Conflict")
    assert IdTag.objects.get(id_tag="CARD").parent.id_tag == "FLEET"
    cycle = api_client.patch("/api/v1/id-tags/FLEET", {"parent_id_tag": "CARD"}, format="json")
    assert cycle.status_code == 400 and "parent_id_tag" in cycle.json()["details"]
    api_client.patch("/api/v1/id-tags/CARD", {"parent_id_tag": None}, format="json")
    assert api_client.delete("/api/v1/id-tags/FLEET").status_code == 204


def test_a_group_id_tag_is_one_level_in_the_api_and_the_admin(api_client, admin_client):
    """A grandparent's Blocked status never reached its cards (OCPP answers one parentIdTag, and
    one level is applied): a group in a group is refused, by the API and the admin alike."""
    for body in ({"id_tag": "GRANDPA", "status": "Blocked"}, {"id_tag": "PAPA", "parent_id_tag": "GRANDPA"}):
        assert api_client.post("/api/v1/id-tags/", body, format="json").status_code == 201
    refused = api_client.post("/api/v1/id-tags/", {"id_tag": "KID", "parent_id_tag": "PAPA"}, format="json")
    assert refused.status_code == 400 and "in a group itself" in refused.json()["details"]["parent_id_tag"][0]
    assert api_client.post("/api/v1/id-tags/", {"id_tag": "ROOT"}, format="json").status_code == 201
    moved = api_client.patch("/api/v1/id-tags/GRANDPA", {"parent_id_tag": "ROOT"}, format="json")
    assert moved.status_code == 400 and "parent of other id tags" in moved.json()["details"]["parent_id_tag"][0]
    papa = IdTag.objects.get(id_tag="PAPA")
    form = {"id_tag": "KID", "token_type": "", "status": "Accepted", "parent": papa.pk, "description": ""}
    page = admin_client.post("/admin/charging/idtag/add/", form)
    assert page.status_code == 200 and "parent" in page.context["adminform"].form.errors
    spaced = admin_client.post("/admin/charging/idtag/add/", {**form, "id_tag": "A B", "parent": ""})
    assert "id_tag" in spaced.context["adminform"].form.errors
    assert not IdTag.objects.filter(id_tag__in=["KID", "A B"]).exists()


def test_an_expiry_before_the_year_1000_is_a_400_naming_it(api_client):
    """RFC 3339 writes four-digit years (round 41's probe: year 216 stored, then answered to the API
    and to chargers as "216-02-06T16:43:30Z")."""
    early = {"id_tag": "OLD-1", "expiry_date": "0216-02-06T16:43:30Z"}
    response = api_client.post("/api/v1/id-tags/", early, format="json")
    assert (response.status_code, list(response.json()["details"])) == (400, ["expiry_date"])
    later = {**early, "expiry_date": "1216-02-06T16:43:30Z"}
    assert api_client.post("/api/v1/id-tags/", later, format="json").status_code == 201


def test_an_ocpp_time_has_four_digit_years_whatever_the_year():
    assert format_ocpp_time(datetime(216, 2, 6, 16, 43, 30, tzinfo=UTC)) == "0216-02-06T16:43:30.000Z"


def test_the_admin_refuses_an_id_tag_with_an_invisible_character(admin_client):
    form = {"id_tag": "CARD\u200b1", "token_type": "", "status": "Accepted", "description": ""}
    response = admin_client.post("/admin/charging/idtag/add/", form)
    assert response.status_code == 200 and "printable characters only" in response.content.decode()
    assert not IdTag.objects.exists()


def test_the_admin_names_the_registered_tag_a_new_one_equals_but_for_case(admin_client):
    IdTag.objects.create(id_tag="CARD-1")
    form = {"id_tag": "card-1", "token_type": "", "status": "Accepted", "description": ""}
    response = admin_client.post("/admin/charging/idtag/add/", form)
    assert response.status_code == 200
    assert "Id tag &#x27;CARD-1&#x27; is already registered; id tags ignore case." in response.content.decode()
    assert "Constraint" not in response.content.decode()
    renamed = {**form, "id_tag": "Card-1"}  # the tag itself, in another case
    tag = IdTag.objects.get()
    assert admin_client.post(f"/admin/charging/idtag/{tag.pk}/change/", renamed).status_code == 302
    assert IdTag.objects.get().id_tag == "Card-1"


def test_a_query_parameter_the_meter_values_do_not_read_is_a_400_naming_it(api_client, register_charge_point):
    """Probe: ``meter-values?measurand=Power.Active.Import`` answered every sample, taken for that measurand."""
    register_charge_point("CP-1")
    session = start("CP-1")
    response = api_client.get(f"/api/v1/transactions/{session.pk}/meter-values?measurand=Power.Active.Import")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"measurand": ["Unknown query parameter."]}
    assert api_client.get(f"/api/v1/transactions/{session.pk}/meter-values?format=json").status_code == 200


def test_the_api_and_the_admin_show_what_a_card_is_answered_beside_its_stored_status(api_client, admin_client):
    """A card stored Accepted whose group is Blocked, or past its expiry date, is refused by every
    charger: the API and the admin showed only "Accepted"."""
    group = IdTag.objects.create(id_tag="FLEET-BLOCKED", status="Blocked")
    IdTag.objects.create(id_tag="CARD-IN-BLOCKED", parent=group)
    IdTag.objects.create(id_tag="CARD-EXPIRED", expiry_date=timezone.now() - timedelta(days=1))
    IdTag.objects.create(id_tag="CARD-FINE")
    listed = {
        tag["id_tag"]: (tag["status"], tag["answered_status"])
        for tag in api_client.get("/api/v1/id-tags/").json()["results"]
    }
    assert listed == {
        "CARD-EXPIRED": ("Accepted", "Expired"),
        "CARD-FINE": ("Accepted", "Accepted"),
        "CARD-IN-BLOCKED": ("Accepted", "Blocked"),
        "FLEET-BLOCKED": ("Blocked", "Blocked"),
    }
    shown = api_client.get("/api/v1/id-tags/card-in-blocked").json()
    assert shown["answered_status"] == "Blocked"
    assert api_client.put("/api/v1/id-tags/card-in-blocked", shown, format="json").status_code == 200  # ignored
    page = admin_client.get("/admin/charging/idtag/").content.decode()
    assert "Answered now" in page
    assert '<td class="field-answered_status">Expired</td>' in page
