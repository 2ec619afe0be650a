"""Charger timestamps (1970, far future, any offset, none) through parsing, status ordering,
duration and pricing: never an error, never negative, never absurd, implausible ones flagged."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing import pricing
from billing.models import Tariff
from chargepoints import clock
from chargepoints.models import Connector
from chargepoints.services import connector_status_set
from charging.metering import Anomaly
from charging.models import ReconciliationItem
from charging.services.meter_ledger import charger_time_judged
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from kernel.timestamps import parse_ocpp_time

TOLERANCE = timedelta(seconds=django_settings.CSMS_CLOCK_SKEW_TOLERANCE)
NOW = datetime.now(UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_charger_ids = itertools.count()
db_settings = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# What chargers send: nothing, a clock at 1970, about now (a little behind or ahead), far ahead, anything at all.
charger_times = st.one_of(
    st.none(),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)).map(lambda d: EPOCH + d),
    st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(hours=3)).map(lambda d: NOW + d),
    st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=365 * 80)).map(lambda d: NOW + d),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)),
)


def judged(sent: datetime | None, received_at: datetime) -> clock.ChargerTime:
    return clock.charger_time(sent, received_at=received_at, tolerance_s=int(TOLERANCE.total_seconds()))


@given(charger_times)
@example(EPOCH + timedelta(seconds=5))
@example(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
def test_a_judged_time_is_between_the_floor_and_its_receipt_and_flagged_iff_implausible(sent):
    time = judged(sent, NOW)
    assert clock.FLOOR <= time.at <= NOW
    assert time.sent == sent
    assert time.implausible == (sent is not None and not clock.FLOOR <= sent <= NOW + TOLERANCE)
    assert time.at == (NOW if time.implausible or sent is None else min(sent, NOW))


@given(charger_times.filter(lambda sent: sent is not None))
@example(NOW)
@example(clock.FLOOR)
@example(NOW + timedelta(microseconds=1))
@example(clock.FLOOR - timedelta(microseconds=1))
def test_a_time_kept_as_sent_is_exactly_one_judging_takes_as_it_is(sent):
    time = judged(sent, NOW)
    assert clock.kept_as_sent(sent, NOW) == (time.at == sent and time.kept is None and not time.implausible)


@given(charger_times)
@example(NOW)
@example(clock.FLOOR)
@example(NOW + timedelta(microseconds=1))
@example(clock.FLOOR - timedelta(microseconds=1))
def test_a_time_judged_with_the_setting_is_what_judging_it_gives(sent):
    """``charger_time_judged`` (which takes a time kept as sent without the setting) is ``charger_time``'s judgement."""
    assert charger_time_judged(sent, NOW) == judged(sent, NOW)


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
    st.sampled_from(["Z", "offset", "none"]),
)
def test_any_ocpp_time_text_parses_to_an_aware_utc_time_without_error(moment, offset_minutes, style):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    text = moment.isoformat(timespec="milliseconds")
    if style == "Z":
        text += "Z"
    elif style == "offset":
        sign, minutes = ("-" if offset_minutes < 0 else "+"), abs(offset_minutes)
        text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    parsed = parse_ocpp_time(text)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)
    if style != "offset":  # no offset is taken as UTC
        assert parsed.replace(tzinfo=None) == moment
    elif datetime(2, 1, 1) < moment < datetime(9998, 1, 1):
        assert parsed == moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert judged(parsed, NOW).at <= NOW


@given(charger_times, charger_times, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))
def test_a_session_priced_from_judged_times_is_never_negative_nor_beyond_what_the_clocks_allow(start, stop, later):
    start_time, stop_time = judged(start, NOW), judged(stop, NOW + later)
    seconds = clock.duration_seconds(start_time.at, stop_time.at)
    assert 0 <= seconds <= (NOW + later - clock.FLOOR).total_seconds()
    if start_time.implausible and stop_time.implausible:
        assert seconds == int(later.total_seconds())
    terms = pricing.TariffTerms(
        currency="EUR", price_per_kwh=Decimal("0.30"), price_per_minute=Decimal("0.05"), session_fee=Decimal("1.00")
    )
    priced = pricing.price_session(terms, energy_wh=Decimal(10000), charging_seconds=seconds, idle_seconds=0)
    assert Decimal("4.00") <= priced.total <= Decimal("4.01") + Decimal(seconds) / 60 * Decimal("0.05")


# --- Through the services, on the database ------------------------------------------------------


def new_charger(register_charge_point) -> str:
    charge_point_id = f"CLK-{next(_charger_ids)}"
    register_charge_point(charge_point_id)
    return charge_point_id


@pytest.mark.django_db
@db_settings
@given(st.lists(st.tuples(st.sampled_from(["Available", "Charging", "Faulted"]), charger_times), max_size=6))
def test_connector_status_ordering_never_freezes_and_never_stores_a_time_from_the_future(
    register_charge_point, statuses
):
    charge_point_id = new_charger(register_charge_point)
    for status, sent in statuses:
        connector_status_set(charge_point_id=charge_point_id, connector_id=1, status=status, timestamp=sent)
        connector = Connector.objects.get(charge_point__charge_point_id=charge_point_id)
        assert clock.FLOOR <= connector.status_timestamp <= datetime.now(UTC)
        # A time is kept as sent only when its receipt stands in for it.
        assert connector.charger_timestamp != connector.status_timestamp
    # Whatever came before, a status without a time (this moment) is applied.
    connector_status_set(charge_point_id=charge_point_id, connector_id=1, status="Unavailable")
    connector = Connector.objects.get(charge_point__charge_point_id=charge_point_id)
    assert (connector.status, connector.charger_timestamp) == ("Unavailable", None)


@pytest.mark.django_db
@db_settings
@given(charger_times, charger_times)
@example(EPOCH + timedelta(seconds=5), None)
@example(NOW - timedelta(minutes=10), NOW - timedelta(minutes=30))
def test_a_session_is_billed_a_sane_amount_and_flagged_whatever_the_clock_said(register_charge_point, start, stop):
    Tariff.objects.get_or_create(
        name="Standard",
        currency="EUR",
        price_per_kwh=Decimal("0.30"),
        price_per_minute=Decimal("0.05"),
        session_fee=Decimal("1.00"),
        is_default=True,
    )
    charge_point_id = new_charger(register_charge_point)
    first_receipt = datetime.now(UTC)
    session = transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"1|T1|1000|{start}",
            started_at=start or first_receipt,
            connector_id=1,
            id_tag="T1",
            meter_start_wh=Decimal(1000),
        )
    ).transaction
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=str(session.pk),
            stopped_at=stop or datetime.now(UTC),
            action="StopTransaction",
            payload={},
            meter_stop_wh=Decimal(11000),
        )
    )
    last_receipt = datetime.now(UTC)
    session.refresh_from_db()
    record = session.billing_record
    # Implausible at either receipt (the first and the last moment it can have been received).
    implausible = [
        sent is not None and judged(sent, first_receipt).implausible and judged(sent, last_receipt).implausible
        for sent in (start, stop)
    ]
    assert record.duration_seconds >= 0
    if any(implausible):
        assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies
    if all(flagged or sent is None for flagged, sent in zip(implausible, (start, stop), strict=True)):
        # Both replaced by their receipt: the session took as long as the test.
        assert record.duration_seconds <= (last_receipt - first_receipt).total_seconds() + 1
    if session.stopped_at < session.started_at:
        assert Anomaly.ENDED_BEFORE_STARTED in session.anomalies and record.duration_seconds == 0
    if session.anomalies:
        assert session.needs_review and record.needs_review
    expected = Decimal("4.00") + pricing.round_money(Decimal(record.charging_seconds) / 60 * Decimal("0.05"), "EUR")
    assert record.total == expected


@pytest.mark.django_db
def test_a_resent_stop_for_an_unknown_session_stamped_1970_is_parked_once_at_its_receipt(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    for _ in range(2):
        item = transaction_stop(
            StopRequest(
                charge_point_id=charge_point_id,
                ocpp_transaction_id="4242",
                stopped_at=EPOCH,
                action="StopTransaction",
                payload={"transactionId": 4242, "meterStop": 5000, "timestamp": "1970-01-01T00:00:00Z"},
                meter_stop_wh=Decimal(5000),
            )
        ).reconciliation_item
    assert ReconciliationItem.objects.filter(charge_point__charge_point_id=charge_point_id).count() == 1
    assert clock.FLOOR < item.stopped_at <= datetime.now(UTC)
