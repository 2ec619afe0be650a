"""The billing API: tariffs, billing records and their CSV export."""

from __future__ import annotations

import csv
import io
import itertools
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.test import AsyncRequestFactory
from rest_framework.test import APIClient

from billing import export, selectors, views
from billing.events import billing_record_created
from billing.export import COLUMNS as EXPORT_COLUMNS
from billing.models import BillingRecord, Tariff
from billing.views import BillingRecordViewSet
from chargepoints.models import ChargePoint
from charging.models import IdTag
from charging.services.transaction_end import transaction_finish
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_start_keys = itertools.count()


def ended_session(
    charge_point_id: str,
    *,
    id_tag: str = "TAG-1",
    at: datetime = T0,
    energy_wh: Decimal | int = 10000,
    duration: timedelta = timedelta(hours=1),
) -> BillingRecord:
    """A 1.6 session (one hour unless said) on a known token that ends with its billing record."""
    if not IdTag.objects.filter(id_tag__iexact=id_tag).exists():
        IdTag.objects.create(id_tag=id_tag)
    session = transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"key-{next(_start_keys)}",
            started_at=at,
            connector_id=1,
            id_tag=id_tag,
            meter_start_wh=Decimal(1000),
        )
    ).transaction
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=session.ocpp_id,
            stopped_at=at + duration,
            action="StopTransaction",
            payload={},
            meter_stop_wh=Decimal(1000) + Decimal(energy_wh),
        )
    )
    return BillingRecord.objects.get(transaction=session)


@pytest.fixture
def default_tariff(db) -> Tariff:
    return Tariff.objects.create(name="Standard", currency="EUR", price_per_kwh=Decimal("0.40"), is_default=True)


TARIFF = {
    "name": "Depot",
    "currency": "eur",
    "price_per_kwh": "0.35",
    "price_per_minute": "0.01",
    "session_fee": "0.50",
    "idle_fee_per_minute": "0.10",
    "idle_grace_minutes": 15,
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_to": "2027-01-01T00:00:00Z",
    "is_default": False,
}


# --- Tariffs ------------------------------------------------------------------------------------


def test_a_tariff_is_created_read_changed_and_deleted(api_client):
    created = api_client.post("/api/v1/tariffs/", TARIFF, format="json")
    assert created.status_code == 201
    body = created.json()
    assert {key: body[key] for key in body if key not in ("id", "created_at", "updated_at")} == {
        "name": "Depot",
        "currency": "EUR",
        "price_per_kwh": "0.3500",
        "price_per_minute": "0.0100",
        "session_fee": "0.50",
        "idle_fee_per_minute": "0.1000",
        "idle_grace_minutes": 15,
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_to": "2027-01-01T00:00:00Z",
        "is_default": False,
    }
    url = f"/api/v1/tariffs/{body['id']}"
    assert api_client.get(url).json() == body
    assert api_client.get("/api/v1/tariffs").json()["count"] == 1

    changed = api_client.patch(url, {"idle_fee_per_minute": None, "is_default": True}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["idle_fee_per_minute"], changed.json()["is_default"]) == (None, True)

    assert api_client.delete(url + "/").status_code == 204
    assert not Tariff.objects.exists()


def test_a_minimal_tariff_gets_the_defaults(api_client):
    response = api_client.post("/api/v1/tariffs/", {"name": "Free", "currency": "EUR"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["price_per_kwh"], body["session_fee"], body["idle_fee_per_minute"]) == ("0.0000", "0.00", None)
    assert (body["valid_from"], body["valid_to"], body["is_default"]) == (None, None, False)


def test_a_price_of_minus_zero_is_zero(api_client):
    """Helper 22's probe: "-0" passed the minimum of 0 and the answer echoed "-0.0000" and "-0.00"
    (a GET then read "0.0000": the database has no negative zero)."""
    minus_zero = {"price_per_kwh": "-0", "price_per_minute": "-0.0", "session_fee": "-0", "idle_fee_per_minute": -0.0}
    created = api_client.post("/api/v1/tariffs/", {"name": "Free", "currency": "EUR", **minus_zero}, format="json")
    prices = ("price_per_kwh", "price_per_minute", "session_fee", "idle_fee_per_minute")
    assert [created.json()[name] for name in prices] == ["0.0000", "0.0000", "0.00", "0.0000"]
    url = f"/api/v1/tariffs/{created.json()['id']}"
    assert api_client.patch(url, {"price_per_kwh": "-0.00"}, format="json").json()["price_per_kwh"] == "0.0000"
    yen = api_client.post("/api/v1/tariffs/", {"name": "Yen", "currency": "JPY", "session_fee": "-0"}, format="json")
    assert yen.json()["session_fee"] == "0"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "EURO"}, "currency"),
        ({"currency": "E1R"}, "currency"),
        ({"currency": "€€€"}, "currency"),
        ({"currency": "ßab"}, "currency"),  # three letters whose upper case is four ("SSAB")
        ({"currency": ""}, "currency"),
        ({"price_per_kwh": "-0.01"}, "price_per_kwh"),
        ({"session_fee": "0.001"}, "session_fee"),
        ({"idle_fee_per_minute": "-1"}, "idle_fee_per_minute"),
        ({"idle_grace_minutes": -1}, "idle_grace_minutes"),
        ({"valid_to": "2025-12-31T00:00:00Z"}, "valid_to"),
        ({"valid_to": "2026-01-01T00:00:00Z"}, "valid_to"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_tariff_is_a_400_naming_the_field(api_client, change, field):
    response = api_client.post("/api/v1/tariffs/", {**TARIFF, **change}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert list(response.json()["details"]) == [field]


@pytest.mark.parametrize(
    ("currency", "accepted"),
    [("EUX", False), ("XXX", False), ("xau", False), ("CLF", False), ("usd", True), ("XOF", True), ("ZWG", True)],
)
def test_a_currency_is_an_iso_4217_code_something_is_billed_in(api_client, currency, accepted):
    """Helper 22's probe: any three letters were a currency (a typo's EUX priced sessions in a
    currency nobody pays; XXX is ISO's code for no currency, XAU an ounce of gold, CLF has 4 decimals)."""
    response = api_client.post("/api/v1/tariffs/", {**TARIFF, "currency": currency, "session_fee": "1"}, format="json")
    assert response.status_code == (201 if accepted else 400)
    if not accepted:
        assert list(response.json()["details"]) == ["currency"]


def test_a_tariff_saved_before_the_currency_check_keeps_its_code(api_client):
    saved = Tariff.objects.create(name="Old", currency="EUX")
    url = f"/api/v1/tariffs/{saved.pk}"
    assert api_client.put(url, {"name": "Renamed", "currency": "eux"}, format="json").status_code == 200
    assert api_client.patch(url, {"currency": "EUY"}, format="json").status_code == 400


def test_a_partial_update_checks_the_window_against_the_stored_start(api_client):
    tariff_id = api_client.post("/api/v1/tariffs/", TARIFF, format="json").json()["id"]
    response = api_client.patch(f"/api/v1/tariffs/{tariff_id}", {"valid_to": "2025-06-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["valid_to"]
    assert api_client.patch(f"/api/v1/tariffs/{tariff_id}", {"valid_to": None}, format="json").status_code == 200


def test_a_tariff_a_charger_uses_cannot_be_deleted(api_client, register_charge_point):
    tariff = Tariff.objects.create(name="Depot", currency="EUR")
    charge_point = register_charge_point("CP-1")
    ChargePoint.objects.filter(pk=charge_point.pk).update(tariff=tariff)
    response = api_client.delete(f"/api/v1/tariffs/{tariff.pk}")
    assert response.status_code == 409
    assert response.json() == {
        "error": "Conflict",
        "message": f"Tariff {tariff.pk} is used by charge points or billing records; set its valid_to instead.",
        "tariff_id": tariff.pk,
    }
    assert Tariff.objects.filter(pk=tariff.pk).exists()


def test_a_tariff_that_priced_a_session_cannot_be_deleted(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-1")
    ended_session("CP-1")
    response = api_client.delete(f"/api/v1/tariffs/{default_tariff.pk}")
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"


def test_unknown_tariffs_are_404(api_client):
    for url in ("/api/v1/tariffs/999999", "/api/v1/tariffs/standard"):
        for method in ("get", "patch", "delete"):
            response = getattr(api_client, method)(url, {}, format="json")
            assert response.status_code == 404, (method, url)
            assert response.json()["error"] == "NotFound"


# --- Billing records ----------------------------------------------------------------------------


def test_a_billing_record_has_every_field(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-1")
    record = ended_session("CP-1")

    response = api_client.get(f"/api/v1/billing-records/{record.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body.pop("created_at").endswith("Z")
    assert body == {
        "id": record.pk,
        "transaction_id": record.transaction_id,
        "ocpp_transaction_id": str(record.transaction_id),
        "charge_point_id": "CP-1",
        "id_tag": "TAG-1",
        "tariff": default_tariff.pk,
        "currency": "EUR",
        "energy_wh": 10000,
        "started_at": "2026-05-01T10:00:00Z",
        "stopped_at": "2026-05-01T11:00:00Z",
        "duration_seconds": 3600,
        "charging_seconds": 3600,
        "idle_seconds": 0,
        "line_items": [
            {
                "kind": "energy",
                "description": "Energy",
                "quantity": "10",
                "unit": "kWh",
                "unit_price": "0.4000",
                "amount": "4.00",
            }
        ],
        "total": "4.00",
        "needs_review": False,
        "anomalies": [],
    }
    assert b'"energy_wh":10000,' in response.content


def test_fractional_energy_is_a_json_float(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-1")
    record = ended_session("CP-1", energy_wh=Decimal("10000.5"))
    assert api_client.get(f"/api/v1/billing-records/{record.pk}/").json()["energy_wh"] == 10000.5


def test_a_session_without_tariff_is_recorded_for_review(api_client, register_charge_point):
    register_charge_point("CP-1")
    record = ended_session("CP-1")
    body = api_client.get(f"/api/v1/billing-records/{record.pk}").json()
    assert (body["tariff"], body["currency"], body["total"], body["needs_review"]) == (None, "", "0.00", True)


@pytest.fixture
def three_records(register_charge_point, default_tariff) -> tuple[BillingRecord, BillingRecord, BillingRecord]:
    register_charge_point("CP-A")
    register_charge_point("CP-B")
    old = ended_session("CP-A", id_tag="Card-1", at=T0 - timedelta(days=1))
    recent = ended_session("CP-A", id_tag="CARD-2", at=T0)
    other = ended_session("CP-B", id_tag="card-1", at=T0 + timedelta(hours=2))
    return old, recent, other


def test_billing_records_are_listed_newest_first_and_filtered(api_client, three_records):
    old, recent, other = three_records

    def ids(query: str = "") -> list[int]:
        response = api_client.get(f"/api/v1/billing-records{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [other.pk, recent.pk, old.pk]
    assert ids("?charge_point_id=CP-A") == [recent.pk, old.pk]
    assert ids("?id_tag=CARD-1") == [other.pk, old.pk]
    assert ids("?stopped_after=2026-05-01T11:00:00Z") == [other.pk, recent.pk]
    assert ids("?stopped_before=2026-05-01T11:00:00Z") == [old.pk]
    assert ids("?charge_point_id=CP-A&id_tag=card-1") == [old.pk]


def test_a_billing_record_filter_given_empty_is_applied_not_dropped(api_client, three_records):
    """``?charge_point_id=`` or ``?id_tag=`` (a client's unset variable) listed, and exported, every
    customer's records, taken for one charger's or card's; an empty time was read as none too."""
    for url in ("/api/v1/billing-records", "/api/v1/billing-records/export"):
        for param in ("charge_point_id", "id_tag"):
            response = api_client.get(f"{url}?{param}=")
            assert response.status_code == 200, (url, param)
            if url.endswith("export"):
                assert b"".join(response.streaming_content).decode().count("\n") == 1  # the header alone
            else:
                assert response.json()["results"] == []
        for param in ("stopped_after", "stopped_before"):
            response = api_client.get(f"{url}?{param}=")
            assert response.status_code == 400, (url, param)
            assert list(response.json()["details"]) == [param]


def test_a_page_of_billing_records_is_read_in_order_through_an_index_not_sorted(three_records):
    """The list's order (newest stop first, also with stopped_after/before) is an index's: a page reads
    its rows in order instead of sorting every record (200,000 records: 0.5 s for the first page)."""
    for filters in ({}, {"stopped_after": T0}, {"stopped_before": T0 + timedelta(days=9)}):
        sql, params = selectors.billing_record_list(**filters)[:100].query.sql_with_params()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_sort = off")  # a sort stays only when no index gives the order
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(line for (line,) in cursor.fetchall())
        assert "Sort" not in plan and "billing_record_stopped" in plan, plan


@pytest.mark.parametrize("param", ["stopped_after", "stopped_before"])
def test_a_bad_billing_record_filter_is_a_400_naming_it(api_client, param):
    for url in ("/api/v1/billing-records", "/api/v1/billing-records/export"):
        response = api_client.get(f"{url}?{param}=last-week")
        assert response.status_code == 400, url
        assert response.json()["error"] == "ValidationError"
        assert list(response.json()["details"]) == [param]


def test_unknown_billing_records_are_404_and_records_are_read_only(api_client):
    for url in ("/api/v1/billing-records/999999", "/api/v1/billing-records/abc"):
        response = api_client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == "NotFound"
    assert api_client.post("/api/v1/billing-records/", {}, format="json").status_code == 405


# --- CSV export ---------------------------------------------------------------------------------


def csv_rows(response) -> list[list[str]]:
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_is_a_csv_attachment_with_one_row_per_record(api_client, three_records):
    old, recent, other = three_records

    response = api_client.get("/api/v1/billing-records/export")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="billing-records.csv"'
    rows = csv_rows(response)
    assert (
        rows[0]
        == EXPORT_COLUMNS
        == [
            "id",
            "transaction_id",
            "ocpp_transaction_id",
            "charge_point_id",
            "id_tag",
            "tariff",
            "started_at",
            "stopped_at",
            "duration_seconds",
            "charging_seconds",
            "idle_seconds",
            "energy_wh",
            "currency",
            "total",
            "needs_review",
        ]
    )
    assert [int(row[0]) for row in rows[1:]] == [other.pk, recent.pk, old.pk]
    assert rows[2] == [
        str(recent.pk),
        str(recent.transaction_id),
        str(recent.transaction_id),
        "CP-A",
        "CARD-2",
        "Standard",
        "2026-05-01T10:00:00Z",
        "2026-05-01T11:00:00Z",
        "3600",
        "3600",
        "0",
        "10000",
        "EUR",
        "4.00",
        "false",
    ]


def test_times_are_written_to_the_second_in_the_list_the_export_and_the_webhook(
    api_client, register_charge_point, default_tariff
):
    """Chargers send milliseconds; the JSON list, the CSV and the event data all write the same text."""
    register_charge_point("CP-A")
    record = ended_session("CP-A", at=T0 + timedelta(microseconds=437_000))

    listed = api_client.get("/api/v1/billing-records").json()["results"][0]
    exported = dict(zip(EXPORT_COLUMNS, csv_rows(api_client.get("/api/v1/billing-records/export"))[1], strict=True))
    event = billing_record_created(record)

    assert listed["started_at"] == exported["started_at"] == "2026-05-01T10:00:00Z"
    assert listed["stopped_at"] == exported["stopped_at"] == event["stopped_at"] == "2026-05-01T11:00:00Z"


def test_the_export_takes_the_list_filters(api_client, three_records):
    old, _, other = three_records
    for url in ("/api/v1/billing-records/export/?id_tag=card-1", "/api/v1/billing-records/export?id_tag=card-1"):
        rows = csv_rows(api_client.get(url))
        assert [int(row[0]) for row in rows[1:]] == [other.pk, old.pk]
    only_header = csv_rows(api_client.get("/api/v1/billing-records/export?charge_point_id=NOBODY"))
    assert only_header == [EXPORT_COLUMNS]


def test_the_export_is_one_page_a_later_page_is_a_404_not_the_whole_export_again(api_client, three_records):
    """``?page=2`` exported every record again (a client paging the export until a 404 counted each
    record once per page, for ever); the export is a whole list's one page, as a session's meter values."""
    for query in ("", "?page=1", "?page=last", "?page_size=1"):
        assert len(csv_rows(api_client.get(f"/api/v1/billing-records/export{query}"))) == 4, query
    response = api_client.get("/api/v1/billing-records/export?page=2")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"
    for param, value in (("page", "0"), ("page_size", "0")):
        response = api_client.get(f"/api/v1/billing-records/export?{param}={value}")
        assert response.status_code == 400
        assert list(response.json()["details"]) == [param]


def test_the_export_answers_an_accept_text_csv_request(api_client, three_records):
    response = api_client.get("/api/v1/billing-records/export", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert len(csv_rows(response)) == 4


def test_the_export_writes_fractional_energy_as_a_plain_number(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-1")
    ended_session("CP-1", energy_wh=Decimal("10000.5"))
    row = csv_rows(api_client.get("/api/v1/billing-records/export"))[1]
    assert row[EXPORT_COLUMNS.index("energy_wh")] == "10000.5"


def test_export_cells_a_spreadsheet_would_run_as_formulas_are_quoted(api_client, register_charge_point, default_tariff):
    register_charge_point("CP-1")
    ended_session("CP-1", id_tag="=HYPERLINK(x)")
    row = csv_rows(api_client.get("/api/v1/billing-records/export"))[1]
    assert row[EXPORT_COLUMNS.index("id_tag")] == "'=HYPERLINK(x)"


def test_the_export_needs_an_api_key(db):
    for client in (APIClient(), APIClient(HTTP_AUTHORIZATION="Bearer dyn_not-a-real-key")):
        response = client.get("/api/v1/billing-records/export")
        assert response.status_code == 401
        assert response["Content-Type"] == "application/json"
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_under_asgi_the_export_streams_from_an_async_iterator(api_key, three_records):
    """Django buffers a synchronous iterator whole when served over ASGI (daphne)."""
    request = AsyncRequestFactory().get(
        "/api/v1/billing-records/export", headers={"Authorization": f"Bearer {api_key}"}
    )

    response = BillingRecordViewSet.as_view({"get": "export"})(request)

    assert response.status_code == 200
    assert response.is_async

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    rows = list(csv.reader(io.StringIO(async_to_sync(read)().decode())))
    assert rows[0] == EXPORT_COLUMNS
    assert len(rows) == 4


def test_the_export_streams_many_rows_a_part_each_made_off_the_event_loop(api_key, three_records, monkeypatch):
    """A part per row cost 140 µs a row and the process about 0.5 KB a row until the export ended
    (200,000 records: 36 s, 0.1 GB more): a part is a chunk of rows (the header with the first),
    read and written in the request's thread."""
    monkeypatch.setattr(views, "_EXPORT_CHUNK", 2)
    threads: set[str] = set()
    row_of = export.row

    def row(record: BillingRecord) -> list[Any]:
        threads.add(threading.current_thread().name)
        return row_of(record)

    monkeypatch.setattr(export, "row", row)
    request = AsyncRequestFactory().get(
        "/api/v1/billing-records/export", headers={"Authorization": f"Bearer {api_key}"}
    )
    response = BillingRecordViewSet.as_view({"get": "export"})(request)

    async def parts() -> tuple[list[bytes], str]:
        return [part async for part in response.streaming_content], threading.current_thread().name

    received, loop_thread = async_to_sync(parts)()
    assert [len(list(csv.reader(io.StringIO(part.decode())))) for part in received] == [2, 2]  # 1 + 3 rows
    assert threads and loop_thread not in threads


def test_a_total_has_its_currency_s_decimals_as_its_line_items_do(api_client, register_charge_point):
    """JPY has no minor unit: its lines said "368" and "250" and its total "618.00"."""
    Tariff.objects.create(
        name="Yen", currency="JPY", price_per_kwh=Decimal("36.75"), session_fee=Decimal("250"), is_default=True
    )
    register_charge_point("CP-1")
    record = ended_session("CP-1")
    body = api_client.get(f"/api/v1/billing-records/{record.pk}").json()
    assert [(item["unit_price"], item["amount"]) for item in body["line_items"]] == [("36.7500", "368"), ("250", "250")]
    assert body["total"] == "618"
    session = api_client.get(f"/api/v1/transactions/{record.transaction_id}").json()
    assert session["billing_record"]["total"] == "618"


def test_a_three_decimal_currency_is_billed_to_its_minor_unit(api_client, register_charge_point):
    """ISO 4217 gives KWD (BHD, OMR, JOD, ...) 3 decimals: a fee of 0.125 KWD was a 400 and 10 kWh at
    0.0345 KWD/kWh was billed 0.35 (rounded to 2 decimals, 5 fils too much)."""
    body = {"name": "Dinar", "currency": "KWD", "price_per_kwh": "0.0345", "session_fee": "0.125", "is_default": True}
    created = api_client.post("/api/v1/tariffs/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["session_fee"] == "0.125"
    register_charge_point("CP-1")
    record = ended_session("CP-1")
    body = api_client.get(f"/api/v1/billing-records/{record.pk}").json()
    assert [(item["unit_price"], item["amount"]) for item in body["line_items"]] == [
        ("0.0345", "0.345"),  # a price keeps its 4 decimals
        ("0.125", "0.125"),
    ]
    assert body["total"] == "0.470"
    assert api_client.get(f"/api/v1/transactions/{record.transaction_id}").json()["billing_record"]["total"] == "0.470"
    header, exported = csv_rows(api_client.get("/api/v1/billing-records/export/"))
    assert exported[header.index("total")] == "0.470"
    assert billing_record_created(record)["total"] == "0.470"
    euros = {"name": "Euro", "currency": "EUR", "price_per_kwh": "0.30", "session_fee": "0.125"}
    refused = api_client.post("/api/v1/tariffs/", euros, format="json")
    assert refused.status_code == 400 and "session_fee" in refused.json()["details"]


def test_the_prices_of_a_tariff_that_priced_a_session_are_fixed(api_client, register_charge_point, default_tariff):
    """A later event re-prices its session with the tariff valid at its start: a changed price
    would change what was billed (4.00 became 100.90)."""
    register_charge_point("CP-1")
    record = ended_session("CP-1")
    url = f"/api/v1/tariffs/{default_tariff.pk}"
    refused = api_client.patch(url, {"price_per_kwh": "9.99"}, format="json")
    assert (refused.status_code, refused.json()["fields"]) == (409, ["price_per_kwh"])
    renamed = api_client.patch(url, {"name": "Old standard", "valid_to": "2099-01-01T00:00:00Z"}, format="json")
    assert renamed.status_code == 200
    default_tariff.refresh_from_db()
    assert (default_tariff.price_per_kwh, default_tariff.name) == (Decimal("0.4000"), "Old standard")
    record.refresh_from_db()
    assert record.total == Decimal("4.00")


@pytest.mark.parametrize(
    ("method", "url", "body", "unknown"),
    [
        ("post", "/api/v1/tariffs/", {"name": "T", "currency": "EUR", "price_per_kWh": "0.45"}, "price_per_kWh"),
        ("post", "/api/v1/id-tags/", {"id_tag": "CARD-9", "parent": "FLEET"}, "parent"),
        ("patch", "/api/v1/chargepoints/CP-1", {"heartbeat_intervall": 30}, "heartbeat_intervall"),
        ("post", "/api/v1/chargepoints/", {"charge_point_id": "CP-2", "pasword": "x" * 16}, "pasword"),
    ],
)
def test_a_misspelt_field_is_a_400_naming_it_not_dropped(api_client, register_charge_point, method, url, body, unknown):
    """A misspelt price made a free tariff (201, price 0), a misspelt password a charger without one."""
    register_charge_point("CP-1")
    response = getattr(api_client, method)(url, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["details"][unknown] == ["Unknown field."]


def test_a_session_fee_with_more_decimals_than_its_currency_is_a_400(api_client):
    """A JPY fee of 100.50 was billed 101 without a word."""
    body = {"name": "Yen", "currency": "JPY", "price_per_kwh": "36.75", "session_fee": "100.50"}
    response = api_client.post("/api/v1/tariffs/", body, format="json")
    assert response.status_code == 400 and "session_fee" in response.json()["details"]
    assert api_client.post("/api/v1/tariffs/", {**body, "session_fee": "100"}, format="json").status_code == 201


def test_a_session_repriced_keeps_the_tariff_that_priced_it(api_client, register_charge_point, default_tariff):
    """A late event re-prices with the tariff that priced the session, whatever the charger's tariff
    and the tariffs' validity are now (round 41's probe: 5.00 EUR became 1.00 GBP, the charger's new tariff)."""
    register_charge_point("CP-1")
    record = ended_session("CP-1")
    pounds = Tariff.objects.create(name="Pounds", currency="GBP", price_per_kwh=Decimal("0.10"))
    assert api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": pounds.pk}, format="json").status_code == 200
    url = f"/api/v1/tariffs/{default_tariff.pk}"
    assert api_client.patch(url, {"valid_to": "2000-01-01T00:00:00Z"}, format="json").status_code == 200
    session = record.transaction
    transaction_finish(
        session=session,
        stopped_at=session.stopped_at,
        meter_stop_wh=session.meter_stop_wh,
        reason=session.stop_reason,
        stop_id_tag=session.stop_id_tag,
    )
    record.refresh_from_db()
    assert (record.tariff_id, record.currency, record.total) == (default_tariff.pk, "EUR", Decimal("4.00"))


@pytest.mark.parametrize(("currency", "fee", "accepted"), [("HUF", "150.50", True), ("PYG", "0.55", False)])
def test_a_currency_s_decimals_are_iso_4217_s(api_client, currency, fee, accepted):
    """HUF has 2 decimals, PYG none (round 41's probe: a HUF fee of 150.50 refused, PYG billed in cents)."""
    body = {"name": currency, "currency": currency, "price_per_kwh": "1", "session_fee": fee}
    response = api_client.post("/api/v1/tariffs/", body, format="json")
    assert response.status_code == (201 if accepted else 400)


def test_a_total_beyond_what_a_record_holds_is_capped_and_needs_review(register_charge_point):
    """A price of 999,999.9999 a minute over three weeks (round 41's probe: numeric overflow, the stop
    answered InternalError on every resend, the session open for ever)."""
    Tariff.objects.create(
        name="Absurd", currency="EUR", price_per_kwh=Decimal("0.30"), price_per_minute=Decimal("999999.9999"),
        is_default=True,
    )  # fmt: skip
    register_charge_point("CP-1")
    record = ended_session("CP-1", energy_wh=1000, duration=timedelta(days=21))
    assert (record.total, record.needs_review) == (Decimal("9999999999"), True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's table rewrite")
def test_the_three_decimal_total_column_was_changed_without_rewriting_the_billing_table():
    """A change of the column's scale (numeric(12,2) to (13,3)) rewrites the billing records' table
    under an exclusive lock while every stop waits to write its record (review): the column is plain
    numeric (its precision dropped, nothing rewritten), amounts rounded before they are stored."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns"
            " WHERE table_name = 'billing_billingrecord' AND column_name = 'total'"
        )
        assert cursor.fetchone() == ("numeric", None, None)


def test_a_session_repriced_without_a_tariff_stays_unpriced(register_charge_point):
    """A session that ended with no tariff to price it is not priced by a default created since, when a
    late event re-prices it: it must cost what it cost (its record needs review), as a priced one keeps
    the tariff that priced it (round 52's probe: a default created after the end billed it 4.00 EUR)."""
    register_charge_point("CP-1")
    record = ended_session("CP-1")
    assert (record.tariff_id, record.currency, record.needs_review) == (None, "", True)
    Tariff.objects.create(name="Standard", currency="EUR", price_per_kwh=Decimal("0.40"), is_default=True)
    session = record.transaction
    transaction_finish(
        session=session,
        stopped_at=session.stopped_at,
        meter_stop_wh=session.meter_stop_wh,
        reason=session.stop_reason,
        stop_id_tag=session.stop_id_tag,
    )
    record.refresh_from_db()
    assert (record.tariff_id, record.currency, record.total, record.line_items) == (None, "", Decimal("0"), [])
    assert record.needs_review
