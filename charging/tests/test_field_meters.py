"""What real chargers' meters and queues send (round 39's probes): garbled numbers, a glitch reading,
a reading stamped after the end, a seqNo counter restarted mid-session, a reboot followed by a
status other than Available. Each bills what was delivered, or is flagged, and never sticks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.metering import Anomaly
from charging.models import IdTag, ReconciliationItem, Transaction, TransactionStatus
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_end import connector_sessions_follow
from charging.services.transaction_stop import StopRequest, transaction_stop
from charging.signals import charger_draw_changed
from charging.tests.test_transactions import T0, new_charger, start_v16, stop, v201_start

pytestmark = pytest.mark.django_db


def ended(
    charge_point_id: str, transaction_id: str, seq_no: int, at, wh: str, *, before=(), **extra
) -> Transaction | None:
    """A 2.0.1 Ended with its End reading ``wh`` (after the samples ``before``), ``extra`` StopRequest fields."""
    end = [*before, SampledValue(timestamp=at, raw_value=wh, context="Transaction.End")]
    return transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=transaction_id,
            stopped_at=at,
            action="TransactionEvent",
            payload=extra.pop("payload", {}),
            samples=end,
            seq_no=seq_no,
            **extra,
        )
    ).transaction


def test_values_that_overflow_any_arithmetic_are_kept_raw_and_the_stop_still_applies(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=1000).transaction
    at = T0 + timedelta(minutes=30)
    garbled = [
        SampledValue(timestamp=at, raw_value="1e999999", unit="kWh"),
        SampledValue(timestamp=at, raw_value="1e999999", measurand="Power.Active.Import", unit="kW"),
        SampledValue(timestamp=at, raw_value="1e-999999999", measurand="Current.Import", unit="A"),
        SampledValue(timestamp=at, raw_value="1." + "0" * 20000 + "1", measurand="Voltage", unit="V"),
    ]
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=garbled)
    stop(charge_point_id, str(session.pk), 11000, samples=garbled)
    session.refresh_from_db()
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(10000))
    values = list(session.meter_samples.order_by("id").values_list("measurand", "value"))
    assert values[:4] == [
        ("Energy.Active.Import.Register", None),
        ("Power.Active.Import", None),
        ("Current.Import", Decimal(0)),
        ("Voltage", None),
    ]


@pytest.mark.parametrize("garbled", ["0", "-5000", "1"])
def test_one_low_reading_mid_session_bills_stop_minus_start_flagged(register_charge_point, garbled):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=100_000).transaction
    reading = [SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value=garbled)]
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=reading)
    stop(charge_point_id, str(session.pk), 110_000)
    session.refresh_from_db()
    assert session.energy_wh == Decimal(10_000)  # was 110,000 (the glitch's 0 up to the stop)
    assert session.needs_review and Anomaly.NON_MONOTONIC_REGISTER in session.anomalies


def test_a_v201_reading_stamped_after_the_end_does_not_raise_the_bill(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-A", 0, T0, samples=begin, baseline_expected=False)
    stopped_at = T0 + timedelta(hours=1)
    ended(charge_point_id, "TX-A", 1, stopped_at, "11000")
    late = [SampledValue(timestamp=stopped_at + timedelta(minutes=4), raw_value="40000")]
    v201_start(charge_point_id, "TX-A", 2, stopped_at + timedelta(minutes=4), samples=late)
    session = Transaction.objects.get(ocpp_transaction_id="TX-A")
    assert (session.status, session.meter_stop_wh, session.energy_wh) == ("ended", Decimal(11000), Decimal(10000))
    assert session.billing_record.energy_wh == Decimal(10000)


def test_a_v201_ended_numbered_like_an_earlier_update_still_ends_the_session(register_charge_point):
    """A charger whose seqNo counter restarted at a reboot mid-session: its Ended's seqNo was an
    Updated's. Acknowledged and dropped as a replay, the session stayed open for ever."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-S", 0, T0, samples=begin, baseline_expected=False)
    for seq_no in (1, 2):
        reading = [SampledValue(timestamp=T0 + timedelta(minutes=10 * seq_no), raw_value=str(1000 + 2500 * seq_no))]
        v201_start(charge_point_id, "TX-S", seq_no, T0 + timedelta(minutes=10 * seq_no), samples=reading)
    session = ended(charge_point_id, "TX-S", 1, T0 + timedelta(minutes=40), "11000")
    assert session is not None
    session.refresh_from_db()
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(10000))
    again = ended(charge_point_id, "TX-S", 1, T0 + timedelta(minutes=40), "11000")  # its resend: a replay
    assert again is not None and again.pk == session.pk
    assert not ReconciliationItem.objects.filter(charge_point=session.charge_point).exists()


def test_an_unreadable_meter_stop_is_flagged_for_review(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=1000).transaction
    stop(charge_point_id, str(session.pk), 10**15)
    session.refresh_from_db()
    assert Anomaly.UNREADABLE_METER_START_OR_STOP in session.anomalies
    assert session.needs_review and session.billing_record.needs_review


def test_an_unreadable_v201_end_reading_is_flagged_for_review(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-U", 0, T0, samples=begin, baseline_expected=False)
    session = ended(charge_point_id, "TX-U", 1, T0 + timedelta(hours=1), "1e15")
    assert session is not None
    session.refresh_from_db()
    assert session.needs_review and Anomaly.UNREADABLE_METER_START_OR_STOP in session.anomalies


@pytest.mark.parametrize(
    ("status", "closes"),
    [
        ("Available", True),
        ("Preparing", True),
        ("Reserved", True),
        ("Unavailable", False),  # a transaction kept through the reboot may pass through these
        ("Faulted", False),
        ("Charging", False),
        ("SuspendedEV", False),
        ("Finishing", False),
        ("Occupied", False),
    ],
)
def test_after_a_reboot_a_connector_with_no_transaction_closes_the_interrupted_session(
    register_charge_point, status, closes
):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    ChargePoint.objects.filter(pk=session.charge_point_id).update(last_boot_at=timezone.now())
    charge_point = ChargePoint.objects.get(pk=session.charge_point_id)
    connector_sessions_follow(
        charge_point=charge_point,
        connector_id=1,
        evse_id=None,
        status=status,
        charging=None,
        at=T0 + timedelta(minutes=31),
    )
    session.refresh_from_db()
    assert (session.status == TransactionStatus.ENDED) is closes
    if closes:
        assert (session.stop_reason, session.closed_by_csms, session.needs_review) == ("Reboot", True, True)


def test_a_session_opened_after_the_boot_by_a_clock_running_behind_is_not_closed(register_charge_point):
    """The charger stamps its start minutes before its boot (its clock lags the CSMS's): the session
    reached the CSMS after the boot, so a Faulted connector mid-session does not close it."""
    charge_point_id = new_charger(register_charge_point)
    booted_at = timezone.now()
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(last_boot_at=booted_at)
    session = start_v16(charge_point_id, at=booted_at - timedelta(minutes=2)).transaction
    charge_point = ChargePoint.objects.get(pk=session.charge_point_id)
    connector_sessions_follow(
        charge_point=charge_point, connector_id=1, evse_id=None, status="Faulted", charging=None, at=timezone.now()
    )
    session.refresh_from_db()
    assert session.status == TransactionStatus.ACTIVE


def test_a_v201_ended_s_token_and_time_spent_charging_are_the_session_s(register_charge_point):
    """A session started without a token and stopped by a tap: billed to that token (was billed to
    nobody, unflagged); its idle time is what its bill says (timeSpentCharging), not 0."""
    IdTag.objects.create(id_tag="TAPPED")
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-T2", 0, T0, samples=begin, baseline_expected=False, authorize=False)
    end = [SampledValue(timestamp=T0 + timedelta(seconds=1000), raw_value="2000", context="Transaction.End")]
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-T2",
            stopped_at=T0 + timedelta(seconds=1000),
            action="TransactionEvent",
            payload={},
            samples=end,
            seq_no=1,
            id_tag="TAPPED",
            id_token_type="ISO14443",
            time_spent_charging=400,
        )
    )
    session = Transaction.objects.get(ocpp_transaction_id="TX-T2")
    assert (session.id_tag, session.id_tag_status, session.idle_seconds) == ("TAPPED", "Accepted", 600)
    record = session.billing_record
    assert (record.id_tag, record.idle_seconds, record.charging_seconds) == ("TAPPED", 600, 400)


def test_a_begin_reading_sent_again_does_not_move_the_meter_start(register_charge_point):
    """Round 40's probes: a 1.6 stop's ``transactionData`` repeating the start in kWh (12.3 for
    meterStart 12,345) billed 3,378 Wh instead of 3,333; a later ``Transaction.Begin`` of 0 billed the
    meter's lifetime; a 2.0.1 Ended repeating its Begin rounded did the same as the first."""
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=12_345).transaction
    zero = [SampledValue(timestamp=T0 + timedelta(minutes=1), raw_value="0", context="Transaction.Begin")]
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=zero)
    repeated = [
        SampledValue(timestamp=T0, raw_value="12.3", unit="kWh", context="Transaction.Begin"),
        SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="15.7", unit="kWh", context="Transaction.End"),
    ]
    stop(charge_point_id, str(session.pk), 15_678, samples=repeated)
    session.refresh_from_db()
    assert (session.meter_start_wh, session.energy_wh) == (Decimal(12_345), Decimal(3_333))

    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="12345", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-B", 0, T0, samples=begin, started_event=True)
    ended(charge_point_id, "TX-B", 1, T0 + timedelta(hours=1), "15678", before=repeated[:1])
    session = Transaction.objects.get(ocpp_transaction_id="TX-B")
    assert (session.meter_start_wh, session.energy_wh) == (Decimal(12_345), Decimal(3_333))


def test_a_begin_reading_arriving_after_a_first_reading_stood_in_for_it_is_the_baseline(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    periodic = [SampledValue(timestamp=T0 + timedelta(minutes=5), raw_value="1500")]
    session = v201_start(charge_point_id, "TX-L", 1, T0 + timedelta(minutes=5), samples=periodic).transaction
    assert Anomaly.MISSING_BASELINE in session.anomalies
    begin = [SampledValue(timestamp=T0 + timedelta(minutes=6), raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-L", 2, T0 + timedelta(minutes=6), samples=begin)
    session.refresh_from_db()
    assert session.meter_start_wh == Decimal(1000) and Anomaly.MISSING_BASELINE not in session.anomalies


def test_a_v201_ended_that_overtook_its_started_gives_the_session_its_token_and_charging_time(
    register_charge_point,
):
    """Parked, then attached when the Started came: its idToken and timeSpentCharging were lost (a bill
    without its customer, its idle time from the states alone)."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    IdTag.objects.create(id_tag="TAG1")
    stopped_at = T0 + timedelta(hours=1)
    payload = {
        "eventType": "Ended",
        "seqNo": 1,
        "idToken": {"idToken": "TAG1", "type": "ISO14443"},
        "transactionInfo": {"transactionId": "TX-E", "timeSpentCharging": 1800},
    }
    ended(charge_point_id, "TX-E", 1, stopped_at, "11000", payload=payload, id_tag="TAG1", id_token_type="ISO14443")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-E", 0, T0, samples=begin, authorize=False, started_event=True)
    session = Transaction.objects.get(ocpp_transaction_id="TX-E")
    assert session.status == TransactionStatus.ENDED
    assert (session.id_tag, session.id_tag_status, session.time_spent_charging) == ("TAG1", "Accepted", 1800)
    assert (session.idle_seconds, session.energy_wh) == (1800, Decimal(10000))


def test_a_v201_event_with_readings_tells_the_site_the_draw_changed(register_charge_point):
    """A 1.6 MeterValues recomputed its charger's site at once; a 2.0.1 Updated's readings waited
    for the site's next beat (52 s in round 40's probe)."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-D", 0, T0, samples=begin, started_event=True)
    told = []

    def heard(sender, **kwargs):
        told.append(kwargs)

    charger_draw_changed.connect(heard, dispatch_uid="test-heard")
    try:
        current = [
            SampledValue(timestamp=T0 + timedelta(minutes=1), raw_value="15.9", measurand="Current.Import", unit="A")
        ]
        v201_start(charge_point_id, "TX-D", 1, T0 + timedelta(minutes=1), samples=current)
    finally:
        charger_draw_changed.disconnect(dispatch_uid="test-heard")
    assert told


def test_a_meter_stop_of_0_gives_way_to_the_stop_s_end_reading(register_charge_point):
    """As a meter start of 0 gives way to a Begin reading: a charger that does not know its register."""
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=12_000).transaction
    end = [SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="15000", context="Transaction.End")]
    periodic = SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="13000", context="Sample.Periodic")
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=[periodic])
    stop(charge_point_id, str(session.pk), 0, samples=end)
    session.refresh_from_db()
    assert session.energy_wh == Decimal(3_000)
    # and stands for the meter stop, unflagged (round 41's probe: 0 kept, non_monotonic_register)
    assert session.meter_stop_wh == Decimal(15_000) and Anomaly.NON_MONOTONIC_REGISTER not in session.anomalies


@pytest.mark.parametrize(
    ("started_with", "ended_with", "billed_to"), [("NOPE", "TAG1", "TAG1"), ("TAG1", "NOPE", "TAG1")]
)
def test_a_v201_ended_s_accepted_token_replaces_a_refused_one_and_never_the_other_way(
    register_charge_point, started_with, ended_with, billed_to
):
    """A session started on a token the CSMS refused is billed to the one it accepted at the end, not
    flagged; a token it accepted stays, whatever refused token the Ended brings."""
    IdTag.objects.create(id_tag="TAG1")
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    v201_start(
        charge_point_id, "TX-R", 0, T0, samples=begin, id_tag=started_with, id_token_type="ISO14443", authorize=True
    )
    assert (Anomaly.UNAUTHORIZED_TOKEN in Transaction.objects.get().anomalies) == (started_with == "NOPE")
    ended(charge_point_id, "TX-R", 1, T0 + timedelta(hours=1), "2000", id_tag=ended_with, id_token_type="ISO14443")
    session = Transaction.objects.get(ocpp_transaction_id="TX-R")
    assert (session.id_tag, session.id_tag_status, session.anomalies, session.needs_review) == (
        billed_to,
        "Accepted",
        [],
        False,
    )
    assert session.billing_record.id_tag == billed_to


def test_a_negative_reading_then_a_register_below_the_start_bills_nothing(register_charge_point):
    """h5's probe: meterStart 10,000, a reading of -500, an Interrupted 9,000, a meterStop of 8,000:
    the -500 was taken for a reset, and the climb from it billed 8,500 Wh for a meter that went down."""
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=10_000).transaction
    for minutes, raw, context in ((10, "-500", "Sample.Periodic"), (20, "9000", "Interrupted")):
        reading = [SampledValue(timestamp=T0 + timedelta(minutes=minutes), raw_value=raw, context=context)]
        meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=reading)
    stop(charge_point_id, str(session.pk), 8_000)
    session.refresh_from_db()
    assert session.energy_wh == Decimal(0)
    assert session.needs_review and Anomaly.NON_MONOTONIC_REGISTER in session.anomalies


def test_a_meter_start_of_minus_one_is_no_baseline(register_charge_point):
    """Firmware that does not know its register at the start sends ``meterStart: -1``: the climb from
    it to the first reading (20,000 Wh, under the jump tolerance) was billed, unflagged."""
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=-1).transaction
    reading = [SampledValue(timestamp=T0 + timedelta(minutes=10), raw_value="20000")]
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=reading)
    stop(charge_point_id, str(session.pk), 21_000)
    session.refresh_from_db()
    assert session.energy_wh == Decimal(1000)  # was 21,001
    assert session.needs_review and Anomaly.NON_MONOTONIC_REGISTER in session.anomalies


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize(
    ("readings", "live", "billed"),
    [
        # the meter replaced (or zeroed by a reboot) mid-session: the live energy dropped to 0 and stayed
        (["505000", "510000", "0", "2000"], [5000, 10000, 10000, 12000], 13000),
        # a garbled 0, then the register back where it was: counted from the meter start again
        (["505000", "510000", "0", "510500"], [5000, 10000, 10000, 10500], 11500),
    ],
)
def test_the_live_energy_of_a_register_reset_mid_session_keeps_what_was_counted(
    register_charge_point, version, readings, live, billed
):
    charge_point_id = new_charger(register_charge_point, version)
    if version == "1.6":
        session = start_v16(charge_point_id, meter_start=500_000).transaction
    else:
        begin = [SampledValue(timestamp=T0, raw_value="500000", context="Transaction.Begin")]
        session = v201_start(charge_point_id, "TX-R", 0, T0, samples=begin, baseline_expected=False).transaction
    seen = []
    for minute, raw in enumerate(readings, start=1):
        at = T0 + timedelta(minutes=10 * minute)
        reading = [SampledValue(timestamp=at, raw_value=raw)]
        if version == "1.6":
            meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=reading)
        else:
            v201_start(charge_point_id, "TX-R", minute, at, samples=reading)
        session.refresh_from_db()
        seen.append(session.energy_wh)
    assert seen == live  # the API's energy_wh, its webhooks, the site's limits
    stop_at, stop_wh = T0 + timedelta(minutes=60), int(readings[-1]) + 1000
    if version == "1.6":
        stop(charge_point_id, str(session.pk), stop_wh, at=stop_at)
    else:
        ended(charge_point_id, "TX-R", 9, stop_at, str(stop_wh))
    session.refresh_from_db()
    assert session.energy_wh == billed


def test_phases_each_rounded_up_above_the_meter_stop_are_rounding_not_a_register_going_back(register_charge_point):
    """A charger reporting its three phase registers in kWh with two decimals (no total) and a meterStop
    in Wh: an EV full at 16,995 Wh reads "5.67" on each phase (5.665 rounded), 17,010 Wh, 15 Wh above
    the stop, which is more than one phase's 10 Wh step but within the three phases' rounding. It was
    flagged non_monotonic_register (needs_review) for every such session ending idle."""
    IdTag.objects.create(id_tag="TAG")
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=12000).transaction
    at = T0 + timedelta(minutes=50)
    phases = [SampledValue(timestamp=at, raw_value="5.67", unit="kWh", phase=phase) for phase in ("L1", "L2", "L3")]
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=phases)
    stop(charge_point_id, str(session.pk), 16995)
    session.refresh_from_db()
    assert (session.energy_wh, session.anomalies, session.needs_review) == (Decimal(4995), [], False)
    # beyond the phases' rounding it still goes back
    session = start_v16(charge_point_id, meter_start=17000, at=T0 + timedelta(hours=2)).transaction
    at = T0 + timedelta(hours=2, minutes=50)
    phases = [SampledValue(timestamp=at, raw_value="7.67", unit="kWh", phase=phase) for phase in ("L1", "L2", "L3")]
    meter_values_record(charge_point_id=charge_point_id, ocpp_transaction_id=str(session.pk), samples=phases)
    stop(charge_point_id, str(session.pk), 22970, at=T0 + timedelta(hours=3))
    session.refresh_from_db()
    assert Anomaly.NON_MONOTONIC_REGISTER in session.anomalies
