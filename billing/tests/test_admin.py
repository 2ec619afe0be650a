"""The tariff pages of the admin check a tariff as the API does (round 40: a negative price billed a
negative total, "eu" and "ß€$" were currencies, a JPY fee had decimals)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib import admin as django_admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages

from billing import services
from billing.models import BillingRecord, Tariff
from charging.models import Transaction
from charging.services.transaction_start import StartRequest, transaction_start
from kernel.tests.page_forms import form_as_posted

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Standard",
    "currency": "eur",
    "price_per_kwh": "0.30",
    "price_per_minute": "0",
    "session_fee": "1.00",
    "idle_fee_per_minute": "0",
    "idle_grace_minutes": "0",
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price_per_kwh": "-1"}, "price_per_kwh"),
        ({"currency": "ß€$"}, "currency"),
        ({"currency": "EUX"}, "currency"),
        ({"currency": "JPY", "session_fee": "1.50"}, "session_fee"),
    ],
)
def test_the_admin_refuses_a_tariff_the_api_refuses(admin_client, change, field):
    response = admin_client.post("/admin/billing/tariff/add/", {**FORM, **change})
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Tariff.objects.exists()


def test_the_admin_stores_a_valid_tariff_with_its_currency_in_upper_case(admin_client):
    response = admin_client.post("/admin/billing/tariff/add/", FORM)
    assert response.status_code == 302
    assert Tariff.objects.values_list("currency", "price_per_kwh").get() == ("EUR", Decimal("0.3000"))


def test_the_admin_lists_a_session_fee_with_its_currency_s_decimals(admin_client):
    """The column keeps 3 decimals (KWD has fils): "1.00" EUR and "0.125" KWD, not "1.000"."""
    Tariff.objects.create(name="Euro", currency="EUR", session_fee=Decimal("1"))
    Tariff.objects.create(name="Dinar", currency="KWD", session_fee=Decimal("0.125"))
    page = admin_client.get("/admin/billing/tariff/").content.decode()
    assert ">1.00<" in page and ">0.125<" in page and "1.000" not in page


def test_the_admin_s_csv_download_is_streamed_a_chunk_of_records_at_a_time(
    admin_client, register_charge_point, django_assert_max_num_queries
):
    """The download read every selected record as an instance and rendered the file whole before
    its first byte left (all 195,000 records: 11 s and 22 MB held). It is streamed as the API's
    export: a chunk of records read (server-side cursor) and sent at a time."""
    charge_point = register_charge_point("CP-CSV")
    t0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    for n in range(5):
        session = Transaction.objects.create(
            charge_point=charge_point,
            ocpp_version="1.6",
            ocpp_transaction_id=str(n),
            start_key=f"k{n}",
            id_tag="TAG",
            status="closed",
            started_at=t0,
            stopped_at=t0 + timedelta(hours=1),
        )
        BillingRecord.objects.create(
            transaction=session,
            charge_point_identity="CP-CSV",
            id_tag="TAG",
            currency="EUR",
            energy_wh=Decimal(1000),
            started_at=t0,
            stopped_at=t0 + timedelta(hours=1, minutes=n),
            duration_seconds=3600,
            charging_seconds=3600,
            idle_seconds=0,
            line_items=[],
            total=Decimal("0.30"),
        )
    data = {"action": "download_csv", "select_across": "1", ACTION_CHECKBOX_NAME: ["0"], "index": 0}
    with django_assert_max_num_queries(12):
        response = admin_client.post("/admin/billing/billingrecord/", data)
        assert response.status_code == 200 and response.streaming
        lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 6 and lines[0].startswith("id,transaction_id") and "CP-CSV" in lines[-1]


def test_a_validity_end_or_default_flag_set_while_a_tariff_s_page_is_open_is_kept_when_the_operator_saves_a_name(
    admin_client,
):
    """The form posted every field as the page showed it, and the save wrote them all: a tariff the
    API ended (``valid_to``) or made the default while its page was open lost both to a change of its
    name. Only what the operator changed on the page is written, on the row as it stands."""
    tariff = services.tariff_save(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"))
    url = f"/admin/billing/tariff/{tariff.pk}/change/"
    page = admin_client.get(url).content.decode()

    ended = datetime(2030, 1, 1, tzinfo=UTC)
    services.tariff_save(tariff=Tariff.objects.get(pk=tariff.pk), valid_to=ended, is_default=True)  # the API
    response = admin_client.post(url, form_as_posted(page, "tariff_form", name="Standard 2030"))

    assert response.status_code == 302
    tariff.refresh_from_db()
    assert (tariff.name, tariff.valid_to, tariff.is_default) == ("Standard 2030", ended, True)
    assert tariff.price_per_kwh == Decimal("0.3000")


def test_a_start_after_an_end_set_while_the_tariff_s_page_was_open_is_the_field_s_error_not_a_500(admin_client):
    """The form checked the tariff with every value the page showed (no ``valid_to``), the save wrote
    the start on the row as it stands, ended by the API meanwhile: a ``valid_from`` after that end
    passed the form and broke the validity constraint at the save, a 500. The form checks what the
    operator changed against the tariff as it stands."""
    tariff = services.tariff_save(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"))
    url = f"/admin/billing/tariff/{tariff.pk}/change/"
    page = admin_client.get(url).content.decode()

    ended = datetime(2030, 1, 1, tzinfo=UTC)
    services.tariff_save(tariff=Tariff.objects.get(pk=tariff.pk), valid_to=ended)  # the API, meanwhile
    response = admin_client.post(
        url, form_as_posted(page, "tariff_form", valid_from_0="2031-01-01", valid_from_1="00:00:00")
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    tariff.refresh_from_db()
    assert (tariff.valid_from, tariff.valid_to) == (None, ended)


def _session_starts(charge_point_id: str, key: str = "race") -> Transaction:
    """A charger starts a session, priced by the default tariff."""
    return transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=key,
            started_at=datetime.now(tz=UTC),
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(0),
        )
    ).transaction


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_a_price_changed_on_a_page_opened_before_a_session_started_under_the_tariff_is_the_field_s_error(
    admin_client, register_charge_point
):
    """The page showed the prices editable; a session started under the tariff before the save, which
    fixed them: the save dropped the price the operator typed without a word (the form, built at the
    save, no longer had the field) and said the tariff was changed. It is the field's error."""
    register_charge_point("CP-T", ocpp_version="1.6")
    tariff = services.tariff_save(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    url = f"/admin/billing/tariff/{tariff.pk}/change/"
    page = admin_client.get(url).content.decode()
    _session_starts("CP-T")

    response = admin_client.post(url, form_as_posted(page, "tariff_form", price_per_kwh="0.45"))

    assert response.status_code == 200
    assert "price_per_kwh" in response.context["adminform"].form.errors
    tariff.refresh_from_db()
    assert tariff.price_per_kwh == Decimal("0.3000")


def test_a_session_started_between_a_price_change_s_check_and_its_save_is_refused_with_a_message(
    admin_client, register_charge_point, monkeypatch
):
    """The form found the prices free, a session started under the tariff before the save, and
    ``tariff_save`` refused the change: a 500. It is refused with the reason, the prices kept."""
    register_charge_point("CP-T", ocpp_version="1.6")
    tariff = services.tariff_save(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    url = f"/admin/billing/tariff/{tariff.pk}/change/"
    page = admin_client.get(url).content.decode()
    tariff_admin = django_admin.site._registry[Tariff]
    saved = tariff_admin.save_model

    def start_then_save(request, obj, form, change):
        _session_starts("CP-T")
        saved(request, obj, form, change)

    monkeypatch.setattr(tariff_admin, "save_model", start_then_save)
    response = admin_client.post(url, form_as_posted(page, "tariff_form", price_per_kwh="0.45"), follow=True)

    assert response.status_code == 200
    assert any("cannot change" in message for message in _messages(response))
    tariff.refresh_from_db()
    assert tariff.price_per_kwh == Decimal("0.3000")


@pytest.mark.parametrize("bulk", [False, True])
def test_a_session_started_under_a_tariff_while_its_deletion_is_confirmed_is_refused_with_a_message(
    admin_client, register_charge_point, monkeypatch, bulk
):
    """The delete page found no open session priced by the tariff, a charger started one before the
    delete, and ``tariff_delete`` refused it: a 500 ("Delete selected": the tariffs before it gone).
    The delete is refused with the reason, every tariff kept."""
    register_charge_point("CP-T", ocpp_version="1.6")
    other = services.tariff_save(name="Other", currency="EUR", price_per_kwh=Decimal("0.20"))
    tariff = services.tariff_save(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    tariff_admin = django_admin.site._registry[Tariff]
    checked = tariff_admin.get_deleted_objects

    def check_then_start(objs, request):
        found = checked(objs, request)
        _session_starts("CP-T")
        return found

    monkeypatch.setattr(tariff_admin, "get_deleted_objects", check_then_start)
    if bulk:
        data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [other.pk, tariff.pk], "post": "yes"}
        response = admin_client.post("/admin/billing/tariff/", data, follow=True)
    else:
        response = admin_client.post(f"/admin/billing/tariff/{tariff.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert any("is used by" in message for message in _messages(response))
    assert Tariff.objects.count() == 2


def test_a_tariff_s_page_is_checked_against_the_validity_as_it_stands_not_as_the_page_showed_it(admin_client):
    """The form's model check took every value the page showed: a start moved past the end the page
    showed, but before the later end the API had set meanwhile, was refused as breaking the validity
    window the tariff no longer had. Saved on the row as it stands, it is accepted."""
    tariff = services.tariff_save(
        name="Standard",
        currency="EUR",
        valid_from=datetime(2030, 1, 1, tzinfo=UTC),
        valid_to=datetime(2030, 2, 1, tzinfo=UTC),
    )
    url = f"/admin/billing/tariff/{tariff.pk}/change/"
    page = admin_client.get(url).content.decode()
    later = datetime(2031, 1, 1, tzinfo=UTC)
    services.tariff_save(tariff=Tariff.objects.get(pk=tariff.pk), valid_to=later)  # the API, meanwhile

    response = admin_client.post(
        url, form_as_posted(page, "tariff_form", valid_from_0="2030-03-01", valid_from_1="00:00:00")
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    tariff.refresh_from_db()
    assert (tariff.valid_from, tariff.valid_to) == (datetime(2030, 3, 1, tzinfo=UTC), later)
