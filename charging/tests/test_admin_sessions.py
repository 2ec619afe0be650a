"""The sessions and billing admin: every page renders, and reconciliation goes through the services."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint, Connector
from charging.models import (
    IdTag,
    LocalAuthList,
    MeterSample,
    ReconciliationItem,
    ReconciliationState,
    Reservation,
    Transaction,
    TransactionStatus,
)
from charging.services import authorization
from charging.services.authorization import local_auth_list_record
from charging.services.connectors import ConnectorInUse, connector_delete
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.reservations import reservation_record
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from kernel.tests.page_forms import form_as_posted

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ITEMS = "/admin/charging/reconciliationitem/"


@pytest.fixture
def ops(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.fixture
def parked(register_charge_point) -> tuple[Transaction, ReconciliationItem]:
    """A 1.6 session still open, and a stop for transactionId 999 the CSMS could not place (by
    another card: not clearly the open session's, ``transaction_stop._open_session_meant``)."""
    register_charge_point("CP-1", ocpp_version="1.6")
    session = transaction_start(
        StartRequest(
            charge_point_id="CP-1",
            ocpp_version="1.6",
            start_key="k1",
            started_at=T0,
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(1000),
        )
    ).transaction
    result = transaction_stop(
        StopRequest(
            charge_point_id="CP-1",
            ocpp_transaction_id="999",
            stopped_at=T0 + timedelta(hours=1),
            action="StopTransaction",
            payload={"transactionId": 999, "meterStop": 5000, "timestamp": "2025-03-01T09:00:00Z", "idTag": "CARD-X"},
            meter_stop_wh=Decimal(5000),
            id_tag="CARD-X",
        )
    )
    assert result.reconciliation_item is not None
    return session, result.reconciliation_item


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _attach(ops: Client, item: ReconciliationItem, session: Transaction):
    data = {"action": "attach", ACTION_CHECKBOX_NAME: [item.pk], "apply": "Attach", "transaction": session.pk}
    return ops.post(ITEMS, data, follow=True)


def test_every_sessions_and_billing_page_renders_with_data(ops, register_charge_point):
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    parent = IdTag.objects.create(id_tag="FLEET")
    IdTag.objects.create(id_tag="TAG", parent=parent, description="Driver")
    reservation_record(
        charge_point=charge_point,
        reservation_id=7,
        id_tag="TAG",
        expiry_date=T0 + timedelta(hours=1),
        accepted=True,
        charger_status="Accepted",
        connector_id=1,
    )
    local_auth_list_record(charge_point=charge_point, version=3, full=True, entries={"TAG": "Accepted"})
    sample = SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="3000", context="Sample.Periodic")
    started = transaction_start(
        StartRequest(
            charge_point_id="CP-1",
            ocpp_version="1.6",
            start_key="k1",
            started_at=T0,
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(1000),
            samples=[sample],
        )
    ).transaction
    transaction_stop(
        StopRequest(
            charge_point_id="CP-1",
            ocpp_transaction_id=str(started.pk),
            stopped_at=T0 + timedelta(hours=1),
            action="StopTransaction",
            payload={"transactionId": started.pk, "meterStop": 5000},
            meter_stop_wh=Decimal(5000),
        )
    )
    transaction_stop(
        StopRequest(
            charge_point_id="CP-1",
            ocpp_transaction_id="-1",
            stopped_at=T0 + timedelta(hours=2),
            action="StopTransaction",
            payload={"transactionId": -1, "meterStop": 7000},
            meter_stop_wh=Decimal(7000),
        )
    )
    models = [IdTag, LocalAuthList, Reservation, Transaction, MeterSample, ReconciliationItem, Tariff, BillingRecord]
    for model in models:
        assert model in admin.site._registry, model
        assert model.objects.exists(), model
        changelist = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert ops.get(changelist).status_code == 200, changelist
        for instance in model.objects.all():
            assert ops.get(f"{changelist}{instance.pk}/change/").status_code == 200, instance

    page = ops.get(f"/admin/charging/transaction/{started.pk}/change/").content.decode()
    record = BillingRecord.objects.get(transaction=started)
    assert f"/admin/billing/billingrecord/{record.pk}/change/" in page
    assert "1.20 EUR" in page  # 4 kWh at 0.30
    assert "Sample.Periodic" in page
    assert ops.get(f"/admin/chargepoints/chargepoint/{charge_point.pk}/change/").status_code == 200


def test_searches_and_filters_find_sessions(ops, parked):
    session, item = parked
    found = ops.get("/admin/charging/transaction/", {"q": str(session.pk), "status__exact": "active"})
    assert found.status_code == 200
    assert found.context["cl"].result_count == 1
    assert ops.get("/admin/charging/transaction/", {"q": "no-such-thing"}).context["cl"].result_count == 0
    items = ops.get(ITEMS, {"q": "999", "state__exact": "open"})
    assert list(items.context["cl"].result_list) == [item]


def test_attach_shows_a_confirmation_with_the_chargers_transactions(ops, parked, register_charge_point):
    session, item = parked
    register_charge_point("CP-OTHER", ocpp_version="1.6")
    other = transaction_start(
        StartRequest(charge_point_id="CP-OTHER", ocpp_version="1.6", start_key="k1", started_at=T0, connector_id=1)
    ).transaction

    response = ops.post(ITEMS, {"action": "attach", ACTION_CHECKBOX_NAME: [item.pk], "index": 0})

    assert response.status_code == 200
    choices = [choice for choice, _ in response.context["form"].fields["transaction"].choices if choice]
    assert [choice.value for choice in choices] == [session.pk]
    assert other.pk not in [choice.value for choice in choices]
    item.refresh_from_db()
    assert item.state == ReconciliationState.OPEN


def test_attaching_a_parked_stop_ends_the_session_with_its_reading(ops, parked):
    session, item = parked

    response = _attach(ops, item, session)

    assert response.status_code == 200
    assert any("attached" in message for message in _messages(response))
    item.refresh_from_db()
    session.refresh_from_db()
    assert (item.state, item.transaction_id, item.resolved_by_id) == (
        ReconciliationState.ATTACHED,
        session.pk,
        User.objects.get(username="ops").pk,
    )
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(4000))
    assert session.stopped_at == T0 + timedelta(hours=1)


def test_attaching_a_resolved_item_again_reports_the_error_and_changes_nothing(ops, parked):
    session, item = parked
    _attach(ops, item, session)
    item.refresh_from_db()
    resolved_at = item.resolved_at

    response = _attach(ops, item, session)

    assert any("not attached" in message and "already attached" in message for message in _messages(response))
    item.refresh_from_db()
    session.refresh_from_db()
    assert (item.state, item.resolved_at) == (ReconciliationState.ATTACHED, resolved_at)
    assert session.energy_wh == Decimal(4000)


def test_attach_refuses_a_transaction_of_another_charger(ops, parked, register_charge_point):
    _, item = parked
    register_charge_point("CP-OTHER", ocpp_version="1.6")
    other = transaction_start(
        StartRequest(charge_point_id="CP-OTHER", ocpp_version="1.6", start_key="k1", started_at=T0, connector_id=1)
    ).transaction

    response = _attach(ops, item, other)

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    item.refresh_from_db()
    other.refresh_from_db()
    assert (item.state, other.status) == (ReconciliationState.OPEN, TransactionStatus.ACTIVE)


def test_attach_wants_exactly_one_item(ops, parked):
    _, item = parked
    second = transaction_stop(
        StopRequest(
            charge_point_id="CP-1",
            ocpp_transaction_id="998",
            stopped_at=T0,
            action="StopTransaction",
            payload={"transactionId": 998},
        )
    ).reconciliation_item
    assert second is not None

    response = ops.post(
        ITEMS, {"action": "attach", ACTION_CHECKBOX_NAME: [item.pk, second.pk], "index": 0}, follow=True
    )

    assert any("exactly one" in message for message in _messages(response))
    assert ReconciliationItem.objects.filter(state=ReconciliationState.OPEN).count() == 2


def test_discard_resolves_open_items_and_reports_those_already_resolved(ops, parked):
    session, item = parked
    _attach(ops, item, session)
    open_item = transaction_stop(
        StopRequest(
            charge_point_id="CP-1",
            ocpp_transaction_id="-1",
            stopped_at=T0,
            action="StopTransaction",
            payload={"transactionId": -1},
        )
    ).reconciliation_item
    assert open_item is not None

    response = ops.post(
        ITEMS, {"action": "discard", ACTION_CHECKBOX_NAME: [item.pk, open_item.pk], "index": 0}, follow=True
    )

    shown = _messages(response)
    assert any("Discarded 1 item" in message for message in shown)
    assert any(f"Item {item.pk} not discarded" in message for message in shown)
    open_item.refresh_from_db()
    item.refresh_from_db()
    assert (open_item.state, open_item.resolved_by_id) == (
        ReconciliationState.DISCARDED,
        User.objects.get(username="ops").pk,
    )
    assert item.state == ReconciliationState.ATTACHED


def test_only_the_note_of_an_item_is_edited_by_hand(ops, parked):
    _, item = parked

    response = ops.post(f"{ITEMS}{item.pk}/change/", {"note": "charger lost its memory", "state": "discarded"})

    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.note, item.state) == ("charger lost its memory", ReconciliationState.OPEN)


def test_transactions_and_billing_records_are_not_edited_by_hand(ops, parked):
    session, _ = parked
    assert ops.get("/admin/charging/transaction/add/").status_code == 403
    assert ops.post(f"/admin/charging/transaction/{session.pk}/change/", {"id_tag": "X"}).status_code == 403
    assert ops.get("/admin/billing/billingrecord/add/").status_code == 403


@pytest.fixture
def default_tariff(db) -> Tariff:
    return Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.25"), is_default=True)


def test_billing_records_download_as_csv(ops, default_tariff, parked):
    """The session started under the default tariff (one created mid-session would not price it)."""
    session, item = parked
    _attach(ops, item, session)
    record = BillingRecord.objects.get(transaction=session)

    response = ops.post(
        "/admin/billing/billingrecord/", {"action": "download_csv", ACTION_CHECKBOX_NAME: [record.pk], "index": 0}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # streamed
    assert len(rows) == 1
    assert (rows[0]["charge_point_id"], rows[0]["id_tag"], rows[0]["currency"], rows[0]["total"]) == (
        "CP-1",
        "TAG",
        "EUR",
        "1.00",
    )
    assert rows[0]["stopped_at"] == "2025-03-01T09:00:00Z"


def test_a_charger_tariff_is_chosen_in_the_charge_point_admin(ops, register_charge_point):
    charge_point = register_charge_point("CP-1")
    Tariff.objects.create(name="Fleet", currency="EUR")

    page = ops.get(f"/admin/chargepoints/chargepoint/{charge_point.pk}/change/").content.decode()

    assert 'name="tariff"' in page
    assert "/admin/autocomplete/" in page
    assert ChargePoint.objects.get(pk=charge_point.pk).tariff is None


def test_id_tags_are_unique_whatever_their_case(ops):
    IdTag.objects.create(id_tag="ABC123")

    response = ops.post("/admin/charging/idtag/add/", {"id_tag": "abc123", "status": "Accepted"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert IdTag.objects.count() == 1


def test_an_id_tag_other_tags_name_as_parent_is_not_deleted_from_the_admin_without_them(ops):
    fleet = IdTag.objects.create(id_tag="FLEET", status="Blocked")
    card = IdTag.objects.create(id_tag="CARD-1", parent=fleet)
    alone = IdTag.objects.create(id_tag="ALONE")

    page = ops.post(f"/admin/charging/idtag/{fleet.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200 and "CARD-1" in page.content.decode()
    selected = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [fleet.pk, alone.pk], "post": "yes"}
    ops.post("/admin/charging/idtag/", selected)
    card.refresh_from_db()
    assert card.parent_id == fleet.pk  # FLEET's Blocked status still holds its card
    assert IdTag.objects.filter(pk__in=[fleet.pk, alone.pk]).count() == 2

    ops.post("/admin/charging/idtag/", {**selected, ACTION_CHECKBOX_NAME: [fleet.pk, card.pk]})
    assert not IdTag.objects.filter(pk__in=[fleet.pk, card.pk]).exists()  # a group deleted with its cards


def test_a_tariff_window_must_end_after_it_starts(ops):
    data = {
        "name": "Night",
        "currency": "EUR",
        "price_per_kwh": "0.20",
        "price_per_minute": "0",
        "session_fee": "0",
        "idle_grace_minutes": "0",
        "valid_from_0": "2025-03-02",
        "valid_from_1": "00:00:00",
        "valid_to_0": "2025-03-01",
        "valid_to_1": "00:00:00",
    }

    response = ops.post("/admin/billing/tariff/add/", data)

    assert response.status_code == 200
    assert not Tariff.objects.exists()
    data["valid_to_0"] = "2025-04-01"
    assert ops.post("/admin/billing/tariff/add/", data).status_code == 302
    assert Tariff.objects.get().name == "Night"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/admin/chargepoints/transaction/7/change/", "/admin/charging/transaction/7/change/"),
        (
            "/admin/chargepoints/reconciliationitem/?state__exact=open",
            "/admin/charging/reconciliationitem/?state__exact=open",
        ),
        ("/admin/commands/installedchargingprofile/", "/admin/charging/installedchargingprofile/"),
        ("/admin/csms/apikey/3/change/", "/admin/kernel/apikey/3/change/"),
    ],
)
def test_bookmarks_of_the_admin_pages_of_moved_models_lead_to_their_new_address(ops, old, new):
    response = ops.get(old)

    assert (response.status_code, response["Location"]) == (301, new)


def test_the_admin_pages_of_the_fleet_stay_where_they_were(ops):
    assert ops.get("/admin/chargepoints/chargepoint/").status_code == 200


SAMPLES = "/admin/charging/metersample/"


@pytest.fixture
def samples(register_charge_point) -> Transaction:
    """A session of 1.6 CP-1 with three energy readings and a SoC, and one of CP-2 with one reading."""
    for charge_point_id, readings in (("CP-1", ["1000", "2000", "3000"]), ("CP-2", ["500"])):
        register_charge_point(charge_point_id, ocpp_version="1.6")
        IdTag.objects.get_or_create(id_tag="TAG-1")
        session = transaction_start(
            StartRequest(
                charge_point_id=charge_point_id,
                ocpp_version="1.6",
                start_key="k",
                started_at=T0,
                connector_id=1,
                id_tag="TAG-1",
                meter_start_wh=Decimal(0),
            )
        ).transaction
        values = [SampledValue(timestamp=T0 + timedelta(minutes=n), raw_value=raw) for n, raw in enumerate(readings)]
        if charge_point_id == "CP-1":
            values.append(SampledValue(timestamp=T0, raw_value="40", measurand="SoC", unit="Percent"))
        meter_values_record(
            charge_point_id=charge_point_id, ocpp_transaction_id=session.ocpp_id, connector_id=1, samples=values
        )
    return Transaction.objects.get(charge_point__charge_point_id="CP-1")


def test_the_meter_sample_list_never_counts_sorts_or_lists_the_whole_table(ops, samples):
    """Millions of samples (5 million: 17 s a page): no SELECT DISTINCT for its filters or dates, a
    count capped, the page read newest first through the primary key, a hand-written ``?o=`` of
    another column ignored; the search goes through the chargers table."""
    with CaptureQueriesContext(connection) as queries:
        page = ops.get(SAMPLES)
    assert page.status_code == 200
    statements = [query["sql"] for query in queries.captured_queries if "chargepoints_metersample" in query["sql"]]
    assert statements and not [sql for sql in statements if "DISTINCT" in sql]
    assert (
        [sql for sql in statements if "COUNT" in sql and "LIMIT 10000" in sql]
        == [sql for sql in statements if "COUNT" in sql]
        != []
    )  # one count, capped
    assert [row.pk for row in page.context["cl"].result_list] == sorted(
        MeterSample.objects.values_list("pk", flat=True), reverse=True
    )
    for ordered in ("?o=0", "?o=4.-6", "?o=x"):
        listed = ops.get(SAMPLES + ordered)
        assert listed.status_code == 200 and set(listed.context["cl"].queryset.query.order_by) == {"-id"}, ordered
    assert {row.charge_point.charge_point_id for row in ops.get(SAMPLES + "?q=p-2").context["cl"].result_list} == {
        "CP-2"
    }
    soc = ops.get(SAMPLES + "?measurand=SoC").context["cl"].result_list
    assert [row.raw_value for row in soc] == ["40"]
    assert "Energy.Active.Import.Register" in page.content.decode()  # a choice of the fixed list
    by_time = ops.get(SAMPLES + "?timestamp__gte=2025-03-01T08:01:00Z&timestamp__lt=2025-03-01T08:02:00Z")
    assert [row.raw_value for row in by_time.context["cl"].result_list] == ["2000"]
    assert ops.get(SAMPLES + f"?transaction__id__exact={samples.pk}").context["cl"].result_count == 4


@pytest.fixture
def billed(register_charge_point) -> BillingRecord:
    """A 1.6 session of CP-1 by TAG-1, ended and billed in EUR."""
    register_charge_point("CP-1", ocpp_version="1.6")
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    IdTag.objects.create(id_tag="TAG-1")
    session = transaction_start(
        StartRequest(
            charge_point_id="CP-1",
            ocpp_version="1.6",
            start_key="k1",
            started_at=T0,
            connector_id=1,
            id_tag="TAG-1",
            meter_start_wh=Decimal(1000),
        )
    ).transaction
    transaction_stop(
        StopRequest(
            charge_point_id="CP-1",
            ocpp_transaction_id=str(session.pk),
            stopped_at=T0 + timedelta(hours=1),
            action="StopTransaction",
            payload={"transactionId": session.pk, "meterStop": 5000},
            meter_stop_wh=Decimal(5000),
        )
    )
    return BillingRecord.objects.get(transaction=session)


@pytest.mark.parametrize(
    ("url", "table", "time_query", "sorted_by"),
    [
        ("/admin/charging/transaction/", "chargepoints_transaction", "started_at__gte=2025-03-01T08:00Z", "started_at"),
        ("/admin/billing/billingrecord/", "billing_billingrecord", "stopped_at__lt=2025-03-01T09:00:01Z", "stopped_at"),
    ],
)
def test_the_session_and_billing_lists_never_count_or_sort_the_whole_table(
    ops, billed, url, table, time_query, sorted_by
):
    """Every session and its billing record are kept (200,000 of each: 0.15-0.65 s a page, seconds
    at millions): no SELECT DISTINCT (the date hierarchy's years, the currencies), one count,
    capped; newest first through an index and no other sort by a hand-written ``?o=``; a time
    filter instead of the date hierarchy; a search by charger id (or part of one) or id tag."""
    for query in ("", time_query, "q=cp-1", "q=tag-1", "q=TAG-1&needs_review__exact=0"):
        with CaptureQueriesContext(connection) as queries:
            page = ops.get(f"{url}?{query}")
        assert page.status_code == 200 and len(page.context["cl"].result_list) == 1, query
        statements = [each["sql"] for each in queries.captured_queries if f'FROM "{table}"' in each["sql"]]
        assert not [sql for sql in statements if "DISTINCT" in sql], statements
        counts = [sql for sql in statements if "COUNT(" in sql]
        assert len(counts) == 1 and "LIMIT 10000" in counts[0], counts
        assert len(queries.captured_queries) <= 8, [each["sql"] for each in queries.captured_queries]
    for ordered in ("", "?o=1", "?o=4.5", "?o=x"):
        order = ops.get(url + ordered).context["cl"].queryset.query.order_by
        assert order[0] == f"-{sorted_by}", (ordered, order)
    assert not ops.get(f"{url}?q=CP-2").context["cl"].result_list
    assert not ops.get(f"{url}?last=1h").context["cl"].result_list  # T0 is long past
    assert "Last 24 hours" in ops.get(url).content.decode()


def test_billing_records_filter_by_the_tariffs_currencies(ops, billed):
    page = ops.get("/admin/billing/billingrecord/")
    assert "?currency=EUR" in page.content.decode()
    assert ops.get("/admin/billing/billingrecord/?currency=EUR").context["cl"].result_count == 1
    assert ops.get("/admin/billing/billingrecord/?currency=USD").context["cl"].result_count == 0


@pytest.mark.parametrize(
    ("url", "table", "searched", "first_order"),
    [
        ("/admin/charging/reservation/", "chargepoints_reservation", ["cp-1", "tag-1", "7"], "-id"),
        ("/admin/charging/idtag/", "chargepoints_idtag", ["tag-1"], 'LOWER("chargepoints_idtag"."id_tag") ASC'),
    ],
)
def test_the_reservation_and_id_tag_lists_never_count_or_sort_the_whole_table(
    ops, register_charge_point, url, table, searched, first_order
):
    """Reservations are kept and a fleet's cards can be hundreds of thousands (200,000 each:
    0.09-0.74 s a page): no SELECT DISTINCT (the date hierarchy's years, the token types), one count,
    capped; an order an index serves and no other by a hand-written ``?o=``; a search by charger id
    (or part of one), id tag or reservation id."""
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    IdTag.objects.create(id_tag="TAG-1", token_type="ISO14443")
    reservation_record(
        charge_point=charge_point,
        reservation_id=7,
        id_tag="TAG-1",
        expiry_date=T0 + timedelta(hours=1),
        accepted=True,
        charger_status="Accepted",
        connector_id=1,
    )
    for query in ["", *(f"q={term}" for term in searched)]:
        with CaptureQueriesContext(connection) as queries:
            page = ops.get(f"{url}?{query}")
        assert page.status_code == 200 and len(page.context["cl"].result_list) == 1, query
        statements = [each["sql"] for each in queries.captured_queries if f'FROM "{table}"' in each["sql"]]
        assert not [sql for sql in statements if "DISTINCT" in sql], statements
        counts = [sql for sql in statements if "COUNT(" in sql]
        assert len(counts) == 1 and "LIMIT 10000" in counts[0], counts
        assert len(queries.captured_queries) <= 8, [each["sql"] for each in queries.captured_queries]
    for ordered in ("", "?o=1", "?o=-2.3", "?o=x"):
        page = ops.get(url + ordered)
        assert page.status_code == 200
        assert (
            str(page.context["cl"].queryset.query)
            .partition("ORDER BY ")[2]
            .startswith(first_order.replace("-id", f'"{table}"."id" DESC'))
        ), ordered
    assert not ops.get(f"{url}?q=CP-2").context["cl"].result_list


def test_a_search_by_id_tag_finds_the_sessions_and_reservations_a_charger_sent_in_another_case(
    ops, register_charge_point
):
    """OCPP matches id tags ignoring case and a charger sends a card's tag in its own case
    ("04a1b2c3" for the registered "04A1B2C3"): a search by the tag, as registered or as typed,
    missed those sessions (an exact match)."""
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    IdTag.objects.create(id_tag="04A1B2C3")
    request = {"charge_point_id": "CP-1", "ocpp_version": "1.6", "started_at": T0, "connector_id": 1}
    for key, id_tag in (("k1", "04a1b2c3"), ("k2", "Unregistered-Card")):
        transaction_start(StartRequest(**request, start_key=key, id_tag=id_tag, meter_start_wh=Decimal(0)))
    reservation_record(
        charge_point=charge_point,
        reservation_id=7,
        id_tag="04a1b2c3",
        expiry_date=T0 + timedelta(hours=1),
        accepted=True,
        charger_status="Accepted",
        connector_id=1,
    )
    for term, sent in (("04A1B2C3", "04a1b2c3"), ("04a1", "04a1b2c3"), ("UNREGISTERED-CARD", "Unregistered-Card")):
        sessions = ops.get("/admin/charging/transaction/", {"q": term}).context["cl"].result_list
        assert [session.id_tag for session in sessions] == [sent], term
    reservations = ops.get("/admin/charging/reservation/", {"q": "04A1B2C3"}).context["cl"].result_list
    assert [reservation.reservation_id for reservation in reservations] == [7]


def test_a_card_blocked_while_its_page_is_open_stays_blocked_when_the_operator_saves_a_description(ops):
    """The form posted every field as the page showed it, and the save wrote them all: a card the API
    (or another operator) blocked while the page was open was Accepted again by a change of its
    description. Only what the operator changed on the page is written, on the row as it stands."""
    card = authorization.id_tag_save(
        id_tag="CARD-STOLEN", description="Van 7", expiry_date=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    )
    url = f"/admin/charging/idtag/{card.pk}/change/"
    page = ops.get(url).content.decode()

    authorization.id_tag_save(tag=card, status="Blocked")  # the fraud desk, through the API, meanwhile
    response = ops.post(url, form_as_posted(page, "idtag_form", description="Van 7 (reported stolen)"))

    assert response.status_code == 302
    card.refresh_from_db()
    assert (card.status, card.description) == ("Blocked", "Van 7 (reported stolen)")
    assert card.expiry_date == datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)  # as the page showed it, untouched


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_card_saved_in_the_admin_is_not_put_in_a_group_that_joins_a_group_meanwhile(behind_a_lock):
    """As the API's save (``id_tag_save``): the parent is checked under its row's lock. The form
    read the group before another save put it in a group, and saved the card into a group of a
    group, whose status ``id_tag_info_of`` does not reach."""
    group = IdTag.objects.create(id_tag="FLEET")
    card = IdTag.objects.create(id_tag="CARD")
    holding = IdTag.objects.create(id_tag="HOLDING")
    ops = Client()
    ops.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    form = {"id_tag": "CARD", "status": "Accepted", "parent": group.pk, "token_type": ""}

    def saved_in_the_admin() -> int:
        return ops.post(f"/admin/charging/idtag/{card.pk}/change/", form).status_code

    _, status = behind_a_lock(lambda: authorization.id_tag_save(tag=group, parent=holding), saved_in_the_admin)
    assert status == 200  # the form again, the parent refused
    assert IdTag.objects.get(pk=card.pk).parent_id is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["admin", "api"])
def test_two_operators_adding_one_id_tag_at_once_the_second_is_told_it_is_registered(behind_a_lock, first):
    """The form checked the tag before the other operator's (or the API's) save committed: both
    checks found none, the second INSERT waited for the first and broke the unique index (a 500).
    The second form now waits for the first save and says the tag is registered."""
    superuser = User.objects.create_superuser("ops", "ops@example.com", "pw")
    operators = [Client(raise_request_exception=False) for _ in range(2)]
    for operator in operators:
        operator.force_login(superuser)

    def added(operator: Client, id_tag: str) -> int:
        return operator.post("/admin/charging/idtag/add/", {"id_tag": id_tag, "status": "Accepted"}).status_code

    def first_added() -> object:
        if first == "api":
            return authorization.id_tag_save(id_tag="CARD-7")
        return added(operators[0], "CARD-7")

    _, status = behind_a_lock(first_added, lambda: added(operators[1], "card-7"))
    assert status == 200  # the form again, with the error
    assert list(IdTag.objects.values_list("id_tag", flat=True)) == ["CARD-7"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["page", "action"])
def test_a_group_is_not_deleted_in_the_admin_from_under_a_card_made_its_child_meanwhile(behind_a_lock, how):
    """As the API's delete (``id_tag_delete``): the group's cards are counted under its row's lock.
    The admin counted none before the save adding one committed, then deleted the group: the
    card's reference to it broke the commit (a 500), or the card lost its group."""
    group = IdTag.objects.create(id_tag="FLEET", status="Blocked")
    card = IdTag.objects.create(id_tag="CARD")
    ops = Client()
    ops.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))

    def deleted_in_the_admin() -> int:
        if how == "page":
            return ops.post(f"/admin/charging/idtag/{group.pk}/delete/", {"post": "yes"}).status_code
        selected = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [group.pk], "post": "yes"}
        return ops.post("/admin/charging/idtag/", selected).status_code

    _, status = behind_a_lock(lambda: authorization.id_tag_save(tag=card, parent=group), deleted_in_the_admin)
    assert status == 200  # the confirmation page again, the card listed as protected
    assert IdTag.objects.get(pk=card.pk).parent_id == group.pk


def test_the_local_lists_page_counts_their_entries_without_reading_them(ops, register_charge_point):
    """Each row's count read the list's entries whole: a page of 100 chargers holding a fleet's
    20,000 cards read and parsed 2,000,000 entries to show 100 numbers."""
    for number, size in enumerate((0, 3, 250)):
        charge_point = register_charge_point(f"CP-LIST-{number}")
        entries = {f"TAG-{n}": "Accepted" for n in range(size)}
        LocalAuthList.objects.create(charge_point=charge_point, version=1, entries=entries)
    with CaptureQueriesContext(connection) as queries:
        page = ops.get("/admin/charging/localauthlist/").content.decode()
    counts = re.findall(r'<td class="field-entry_count">(\d+)</td>', page)
    assert sorted(int(count) for count in counts) == [0, 3, 250]
    read = [q["sql"] for q in queries if re.search(r'"entries"(,| FROM)', q["sql"])]
    assert not read

    listed = LocalAuthList.objects.get(charge_point__charge_point_id="CP-LIST-1")
    page = ops.get(f"/admin/charging/localauthlist/{listed.pk}/change/").content.decode()
    assert "TAG-2" in page


def test_an_operator_deletes_a_connector_the_charger_no_longer_has_not_one_with_an_open_session(ops, parked):
    """A 1.6 charger that reports one connector instead of two after a firmware update kept the old
    one with its last status for good (API list, dashboard counts, a site's outlets): the admin and
    the API were read-only. The admin deletes it, through ``connector_delete``; not a connector a
    session is open on."""
    session, _ = parked
    charge_point = session.charge_point
    in_use, _ = Connector.objects.get_or_create(charge_point=charge_point, connector_id=1)
    gone = Connector.objects.create(charge_point=charge_point, connector_id=2, status="Faulted")

    assert ops.post(f"/admin/chargepoints/connector/{gone.pk}/delete/", {"post": "yes"}).status_code == 302
    refused = ops.post(f"/admin/chargepoints/connector/{in_use.pk}/delete/", {"post": "yes"})

    assert refused.status_code == 200
    assert "Open session on" in refused.content.decode()
    assert list(Connector.objects.filter(charge_point=charge_point).values_list("connector_id", flat=True)) == [1]
    with pytest.raises(ConnectorInUse):
        connector_delete(connector=in_use)


def _session_starts_after_the_page_s_check(monkeypatch, charge_point_id: str, connector_id: int) -> None:
    """The race: a charger starts a session on the connector right after the delete page checked that
    none was open (its confirmation, or the list's "Delete selected")."""
    connector_admin = admin.site._registry[Connector]
    checked = connector_admin.get_deleted_objects

    def check_then_start(objs, request):
        found = checked(objs, request)
        transaction_start(
            StartRequest(
                charge_point_id=charge_point_id,
                ocpp_version="1.6",
                start_key="race",
                started_at=T0,
                connector_id=connector_id,
                id_tag="TAG",
                meter_start_wh=Decimal(0),
            )
        )
        return found

    monkeypatch.setattr(connector_admin, "get_deleted_objects", check_then_start)


def test_a_session_started_on_a_connector_while_its_deletion_is_confirmed_is_refused_with_a_message(
    ops, register_charge_point, monkeypatch
):
    """The page checked that no session was open on the connector, a charger started one before the
    delete, and ``connector_delete`` refused it: a 500. The delete is refused with the reason, the
    connector kept."""
    charge_point = register_charge_point("CP-RACE", ocpp_version="1.6")
    connector = Connector.objects.create(charge_point=charge_point, connector_id=1, status="Available")
    _session_starts_after_the_page_s_check(monkeypatch, "CP-RACE", 1)

    response = ops.post(f"/admin/chargepoints/connector/{connector.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert any("has an open session" in message for message in _messages(response))
    assert Connector.objects.filter(pk=connector.pk).exists()


def test_a_session_started_while_connectors_are_deleted_in_bulk_deletes_none_and_says_why(
    ops, register_charge_point, monkeypatch
):
    """The list's "Delete selected": a session started on one of them after the page's check
    failed the delete half-way (those before it gone), a 500. None is deleted, the reason shown."""
    charge_point = register_charge_point("CP-RACE", ocpp_version="1.6")
    connectors = [
        Connector.objects.create(charge_point=charge_point, connector_id=n, status="Available") for n in (1, 2, 3)
    ]
    _session_starts_after_the_page_s_check(monkeypatch, "CP-RACE", 3)

    data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [c.pk for c in connectors], "post": "yes"}
    response = ops.post("/admin/chargepoints/connector/", data, follow=True)

    assert response.status_code == 200
    assert any("has an open session" in message for message in _messages(response))
    assert Connector.objects.filter(charge_point=charge_point).count() == 3


@pytest.mark.parametrize("parent", ["abc", "1.5", "99999999999999999999", "7\x00"])
def test_a_parent_no_id_tag_can_have_is_the_parent_s_error_not_a_500(ops, parent):
    """A parent posted that no tag's id can be (``parent=abc``, a number beyond the column) was looked
    up to label the page's parent box again: a 500. It is the field's error, no tag added."""
    response = ops.post("/admin/charging/idtag/add/", {"id_tag": "CHILD", "status": "Accepted", "parent": parent})

    assert response.status_code == 200
    assert "parent" in response.context["adminform"].form.errors
    assert not IdTag.objects.filter(id_tag="CHILD").exists()
