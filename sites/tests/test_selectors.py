"""The session views the engine allocates from (``sites.selectors``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from charging.models import MeterSample, Transaction
from sites.models import SessionLimit, Site, SiteMember
from sites.selectors import site_sessions

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _reading(session: Transaction, amps: str, received_at: datetime, **signed: object) -> None:
    MeterSample.objects.create(
        charge_point_id=session.charge_point_id,
        transaction=session,
        source="MeterValues",
        timestamp=received_at,
        measurand="Current.Import",
        unit="A",
        raw_value=amps,
        received_at=received_at,
        **signed,
    )


def test_a_reading_received_before_its_limit_was_raised_does_not_count_as_its_draw(register_charge_point):
    """After a raise, the car's last reading still shows the old limit: it is not "taking less"."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-SITE")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    _reading(session, "8.6", T0 + timedelta(seconds=10))
    raised = T0 + timedelta(seconds=20)
    held = SessionLimit.objects.create(
        site=site, transaction=session, limit_a=Decimal(13), sent_at=raised, raised_at=raised
    )
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=30))
    assert view.demand.draw_a is None

    held.sent_at = T0 + timedelta(seconds=40)
    held.save()  # the same limit sent again (or a lower one): readings since the raise count
    _reading(session, "12.9", T0 + timedelta(seconds=30))
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=50))
    assert view.demand.draw_a == Decimal("12.9")


def test_a_1_6_signed_current_is_not_taken_for_the_car_s_draw(register_charge_point):
    """A 1.6 SignedData value is the signed blob: "3E50" is no current, however it reads; a 2.0.1
    reading with its signature beside it is one."""
    site = Site.objects.create(name="Depot", phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))
    charge_point = register_charge_point("CP-SIGNED")
    SiteMember.objects.create(site=site, charge_point=charge_point)
    session = Transaction.objects.create(
        charge_point=charge_point, ocpp_transaction_id="1", start_key="k", connector_id=1, started_at=T0
    )
    _reading(session, "3E50", T0, format="SignedData", signed_data={"format": "SignedData", "value": "3E50"})
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=5))
    assert view.demand.draw_a is None
    _reading(session, "9.5", T0 + timedelta(seconds=1), signed_data={"signed_meter_data": "OCMF|9.5"})
    [view] = site_sessions(site=site, now=T0 + timedelta(seconds=5))
    assert view.demand.draw_a == Decimal("9.5")
