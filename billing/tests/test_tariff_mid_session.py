"""A session is billed with the tariff valid at its start: an operator's change mid-session (the
charger given another tariff, a new default, the default flag moved) does not re-price it, nor does
the tariff it started under go while it is open (round 44's probe: a session started at 0.10 EUR/kWh
was billed 9.00 EUR at 0.90, the charger's tariff changed before its stop)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing import selectors
from billing.models import BillingRecord, SessionTariff, Tariff
from charging.models import IdTag, Transaction
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_keys = itertools.count()


@pytest.fixture(params=["postgresql", "other"])
def vendor(request, monkeypatch) -> None:
    """The plain statement (PostgreSQL), then the ORM's path (any other database)."""
    if request.param != "postgresql":
        monkeypatch.setattr(selectors.connection, "vendor", request.param)


def started(charge_point_id: str) -> Transaction:
    IdTag.objects.get_or_create(id_tag="TAG-1")
    request = StartRequest(
        charge_point_id=charge_point_id,
        ocpp_version="1.6",
        start_key=f"key-{next(_keys)}",
        started_at=T0,
        connector_id=1,
        id_tag="TAG-1",
        meter_start_wh=Decimal(0),
    )
    return transaction_start(request).transaction


def billed(session: Transaction) -> BillingRecord:
    """The session stopped after 10 kWh, and its billing record."""
    transaction_stop(
        StopRequest(
            charge_point_id=session.charge_point.charge_point_id,
            ocpp_transaction_id=session.ocpp_id,
            stopped_at=T0 + timedelta(hours=1),
            action="StopTransaction",
            payload={},
            meter_stop_wh=Decimal(10000),
        )
    )
    return BillingRecord.objects.get(transaction=session)


def tariff(name: str, price: str, **fields: object) -> Tariff:
    return Tariff.objects.create(name=name, currency="EUR", price_per_kwh=Decimal(price), **fields)


def test_a_charger_given_another_tariff_mid_session(api_client, register_charge_point, vendor):
    cheap, dear = tariff("Cheap", "0.10"), tariff("Dear", "0.90")
    register_charge_point("CP-1", tariff=cheap)
    session = started("CP-1")
    assert api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": dear.pk}, format="json").status_code == 200
    record = billed(session)
    assert (record.tariff_id, record.total) == (cheap.pk, Decimal("1.00"))
    following = started("CP-1")
    assert api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": cheap.pk}, format="json").status_code == 200
    assert billed(following).tariff_id == dear.pk  # started under the new tariff
    # only the open sessions' are kept: the ended one's went at the next change
    assert list(SessionTariff.objects.values_list("transaction_id", flat=True)) == [following.pk]


def test_a_new_default_or_the_default_flag_moved_mid_session(api_client, register_charge_point, vendor):
    old = tariff("Old", "0.10", is_default=True)
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    first, second = started("CP-1"), started("CP-2")
    new = {"name": "New", "currency": "EUR", "price_per_kwh": "0.90", "is_default": True}
    assert api_client.post("/api/v1/tariffs/", new, format="json").status_code == 201  # the latest default wins
    assert billed(first).tariff_id == old.pk
    assert api_client.patch(f"/api/v1/tariffs/{old.pk}", {"is_default": False}, format="json").status_code == 200
    assert billed(second).total == Decimal("1.00")


def test_a_session_started_without_a_tariff_stays_unpriced(api_client, register_charge_point, vendor):
    """Helper 22's probe: no tariff for the charger nor a default at the start, a default posted
    mid-session priced the session at its stop (the kept tariffs could not say "none")."""
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    first, second = started("CP-1"), started("CP-2")
    own = tariff("Own", "0.50")
    assert api_client.patch("/api/v1/chargepoints/CP-2", {"tariff": own.pk}, format="json").status_code == 200
    new = {"name": "New", "currency": "EUR", "price_per_kwh": "0.90", "is_default": True}
    assert api_client.post("/api/v1/tariffs/", new, format="json").status_code == 201
    for session in (first, second):
        record = billed(session)
        assert (record.tariff_id, record.currency, record.total, record.needs_review) == (None, "", 0, True)
    assert billed(started("CP-1")).total == Decimal("9.00")  # started under the new default
    assert billed(started("CP-2")).total == Decimal("5.00")


def test_the_tariff_an_open_session_started_under_is_not_deleted(api_client, register_charge_point):
    own = tariff("Own", "0.10")
    tariff("Default", "0.90", is_default=True)
    register_charge_point("CP-1", tariff=own)
    session = started("CP-1")
    assert api_client.patch("/api/v1/chargepoints/CP-1", {"tariff": None}, format="json").status_code == 200
    assert api_client.delete(f"/api/v1/tariffs/{own.pk}").status_code == 409
    assert billed(session).tariff_id == own.pk


def test_a_change_that_prices_no_session_differently_keeps_nothing(api_client, register_charge_point):
    """A tariff renamed, a charger's other fields changed: no read of the open sessions."""
    own = tariff("Own", "0.10")
    register_charge_point("CP-1", tariff=own)
    session = started("CP-1")
    assert api_client.patch(f"/api/v1/tariffs/{own.pk}", {"name": "Renamed"}, format="json").status_code == 200
    assert api_client.patch("/api/v1/chargepoints/CP-1", {"heartbeat_interval": 30}, format="json").status_code == 200
    assert not SessionTariff.objects.exists()
    assert billed(session).tariff_id == own.pk


def test_the_admin_does_not_delete_the_tariff_an_open_session_started_under(admin_client, register_charge_point):
    """The admin's delete skipped ``tariff_delete``: the default tariff a session started under went,
    and the session was billed at none (round 44's probe)."""
    default = tariff("Default", "0.10", is_default=True)
    register_charge_point("CP-1")
    session = started("CP-1")
    page = admin_client.get(f"/admin/billing/tariff/{default.pk}/delete/")
    assert "protected" in page.content.decode()
    admin_client.post(f"/admin/billing/tariff/{default.pk}/delete/", {"post": "yes"})
    assert Tariff.objects.filter(pk=default.pk).exists()
    assert billed(session).tariff_id == default.pk
    spare = tariff("Spare", "0.20")
    response = admin_client.post(f"/admin/billing/tariff/{spare.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Tariff.objects.filter(pk=spare.pk).exists()


def test_the_admin_s_delete_confirmation_page_writes_nothing(admin_client, register_charge_point):
    """Round 45: the confirmation page (a GET) kept every open session's tariff (``SessionTariff``
    rows) to find the sessions protecting the tariff: a GET must not write. It now reads which open
    sessions started under it, and still shows them protecting it."""
    default = tariff("Default", "0.10", is_default=True)
    register_charge_point("CP-1")
    session = started("CP-1")
    page = admin_client.get(f"/admin/billing/tariff/{default.pk}/delete/")
    assert "protected" in page.content.decode()
    assert not SessionTariff.objects.exists()
    assert billed(session).tariff_id == default.pk
    spare = tariff("Spare", "0.20")
    page = admin_client.get(f"/admin/billing/tariff/{spare.pk}/delete/")
    assert "protected" not in page.content.decode()
    assert not SessionTariff.objects.exists()


def test_the_prices_of_the_tariff_an_open_session_started_under_are_fixed(
    api_client, admin_client, register_charge_point
):
    """Helper 5's probe: a tariff that had priced no session yet could have its prices changed while
    a session it priced was open: 10 kWh started at 0.10 EUR/kWh were billed 9.00 EUR at 0.90 (the
    operator's change re-priced the part already charged). Its prices are fixed as for a tariff that
    priced a record (409 naming the fields; read-only in the admin); its name, default flag and
    validity may change, and a tariff no open session started under keeps changing freely."""
    default = tariff("Default", "0.10", is_default=True)
    spare = tariff("Spare", "0.20")
    register_charge_point("CP-1")
    session = started("CP-1")
    url = f"/api/v1/tariffs/{default.pk}"
    refused = api_client.patch(url, {"price_per_kwh": "0.90", "session_fee": "1.00"}, format="json")
    assert (refused.status_code, refused.json()["fields"]) == (409, ["price_per_kwh", "session_fee"])
    assert api_client.patch(url, {"name": "Standard", "price_per_kwh": "0.1"}, format="json").status_code == 200
    form = admin_client.get(f"/admin/billing/tariff/{default.pk}/change/").context["adminform"].form
    assert "price_per_kwh" not in form.fields
    changed = api_client.patch(f"/api/v1/tariffs/{spare.pk}", {"price_per_kwh": "0.25"}, format="json")
    assert changed.status_code == 200
    assert billed(session).total == Decimal("1.00")
