"""The tariff pages of the admin check a tariff as the API does (round 40: a negative price billed a
negative total, "eu" and "ß€$" were currencies, a JPY fee had decimals)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Tariff

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
