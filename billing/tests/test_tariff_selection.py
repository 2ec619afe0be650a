"""Which tariff prices a session: the charger's own when valid, else the latest valid default;
the plain statement (PostgreSQL) chooses as the ORM does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from billing.models import Tariff
from billing.selectors import tariff_for
from chargepoints.models import ChargePoint

pytestmark = pytest.mark.django_db

JAN, MAR, MAY, JUL = (datetime(2026, month, 1, tzinfo=UTC) for month in (1, 3, 5, 7))


def tariff(name: str, **fields: object) -> Tariff:
    return Tariff.objects.create(name=name, currency="EUR", **fields)


@pytest.fixture(params=["postgresql", "other"])
def vendor(request, monkeypatch) -> None:
    """The plain statement (PostgreSQL), then the ORM's path (any other database)."""
    if request.param != connection.vendor:
        if connection.vendor != "postgresql":
            pytest.skip("plain statements are PostgreSQL only")
        monkeypatch.setattr(connection, "vendor", request.param)


@pytest.fixture
def chargers(register_charge_point):
    tariff("old default", is_default=True, valid_to=MAR)
    tariff("open default", is_default=True)
    tariff("spring default", is_default=True, valid_from=MAR, valid_to=JUL)
    own = tariff("own", valid_from=MAR, valid_to=MAY)
    with_own = register_charge_point("CP-OWN", tariff=own)
    return with_own, register_charge_point("CP-PLAIN")


def test_the_own_tariff_wins_while_valid_then_the_default_valid_last(chargers, vendor):
    with_own, without = chargers
    chosen = [tariff_for(charge_point=cp, at=at).name for cp in (with_own, without) for at in (JAN, MAR, MAY, JUL)]
    assert chosen == [
        *("open default", "own", "spring default", "open default"),
        *("open default", "spring default", "spring default", "open default"),
    ]


def test_no_valid_tariff_is_none(register_charge_point):
    tariff("later", is_default=True, valid_from=JUL)
    assert tariff_for(charge_point=register_charge_point("CP-1"), at=JAN) is None


def test_a_charger_whose_row_is_gone_gets_the_default_tariff(chargers, vendor):
    _, without = chargers
    ChargePoint.objects.filter(pk=without.pk).delete()
    assert tariff_for(charge_point=without, at=JAN).name == "open default"
