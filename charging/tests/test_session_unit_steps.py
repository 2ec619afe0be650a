"""The steps every session message takes on the group commit's batch thread, where they skip work
(issue 15): what they skip must be what they would have found unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.dispatch import Signal

from chargepoints import clock
from chargepoints.models import ChargePoint
from charging.models import Transaction
from charging.services.meter_ledger import SampledValue, samples_judged
from charging.services.open_sessions import _session_copied
from charging.services.session_rows import transaction_remember, transaction_save_changes
from charging.services.transaction_start import StartRequest, _as_stored
from charging.signals import charger_draw_changed, transaction_ended

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
AHEAD = timedelta(seconds=settings.CSMS_CLOCK_SKEW_TOLERANCE // 2)  # a clock a little ahead: plausible


def _sample(at: datetime) -> SampledValue:
    return SampledValue(timestamp=at, raw_value="1000")


def test_plausible_sample_times_are_kept_as_the_samples_sent_and_the_others_judged():
    behind, exact, ahead, unset = (
        _sample(NOW - timedelta(minutes=1)),
        _sample(NOW),
        _sample(NOW + AHEAD),
        _sample(datetime(1970, 1, 1, tzinfo=UTC)),
    )
    judged = samples_judged([behind, exact, ahead, unset], NOW)

    assert judged[0] is behind and judged[1] is exact
    assert (judged[2].timestamp, judged[2].charger_timestamp, judged[2].clock_implausible) == (
        NOW,
        ahead.timestamp,
        False,
    )
    assert (judged[3].timestamp, judged[3].charger_timestamp, judged[3].clock_implausible) == (
        NOW,
        unset.timestamp,
        True,
    )


def _start(**changes: Any) -> StartRequest:
    values: dict[str, Any] = {
        "charge_point_id": "CP-1",
        "ocpp_version": "2.0.1",
        "start_key": "TX-1",
        "started_at": NOW - timedelta(minutes=1),
        "id_tag": "TAG",
        "samples": [_sample(NOW - timedelta(minutes=1))],
    }
    return StartRequest(**{**values, **changes})


def test_a_start_judged_unchanged_is_the_request_itself():
    request = _start()
    start = clock.charger_time(request.started_at, received_at=NOW, tolerance_s=settings.CSMS_CLOCK_SKEW_TOLERANCE)

    assert _as_stored(request, start, samples_judged(request.samples, NOW)) is request


@pytest.mark.parametrize(
    "changes",
    [
        {"started_at": NOW + AHEAD},  # its time: the receipt
        {"started_at": datetime(1970, 1, 1, tzinfo=UTC)},  # implausible
        {"id_tag": "T" * 300},  # longer than its column
        {"start_key": "K" * 300},  # hashed
        {"samples": [_sample(datetime(1970, 1, 1, tzinfo=UTC))]},  # a sample judged
    ],
)
def test_a_start_judging_changes_is_stored_as_judged(changes):
    request = _start(**changes)
    start = clock.charger_time(request.started_at, received_at=NOW, tolerance_s=settings.CSMS_CLOCK_SKEW_TOLERANCE)
    samples = samples_judged(request.samples, NOW)

    stored = _as_stored(request, start, samples)

    id_tag_length = Transaction._meta.get_field("id_tag").max_length
    assert stored.started_at == start.at
    assert stored.samples == samples
    assert stored.id_tag == request.id_tag[:id_tag_length]
    assert stored.start_key == request.start_key or stored.start_key.startswith("sha256:")
    assert stored != request


@pytest.mark.parametrize("beyond_the_columns", [False, True])
def test_a_kept_copy_shares_no_list_or_dict_with_the_session_and_drops_what_a_unit_noted(beyond_the_columns):
    """Both ways of copying: a session of columns only (the fast one), and one with another attribute."""
    session = Transaction(pk=5, charge_point=ChargePoint(pk=1, charge_point_id="CP-1"), seq_nos=[1], anomalies=["a"])
    session._csms_guard = NOW
    if beyond_the_columns:
        session._prefetched_objects_cache = {"samples": []}

    copy = _session_copied(session)

    assert (copy.seq_nos, copy.anomalies, copy.pk, copy.charge_point_id) == ([1], ["a"], 5, 1)
    assert copy.seq_nos is not session.seq_nos and copy.anomalies is not session.anomalies
    if beyond_the_columns:
        assert copy._prefetched_objects_cache == {"samples": []}
        assert copy._prefetched_objects_cache is not session._prefetched_objects_cache
    assert not hasattr(copy, "_csms_guard")
    assert "charge_point" not in copy._state.fields_cache and not copy._state.adding


def test_a_session_saves_what_changed_in_place_or_by_value_and_nothing_else(register_charge_point):
    charger = register_charge_point("CP-SAVE")
    session = Transaction.objects.create(charge_point=charger, start_key="K", started_at=NOW, anomalies=["x"])
    transaction_remember(session)
    Transaction.objects.filter(pk=session.pk).update(id_tag="ELSEWHERE")  # not this copy's change: not written back

    session.anomalies.append("y")  # a JSON column changed in place
    session.energy_wh = Decimal("12.5")
    session.started_at = NOW.replace()  # an equal value, another object: unchanged
    transaction_save_changes(session)

    row = Transaction.objects.get(pk=session.pk)
    assert (row.anomalies, row.energy_wh, row.id_tag, row.started_at) == (["x", "y"], Decimal("12.5"), "ELSEWHERE", NOW)


@pytest.fixture(params=[charger_draw_changed, transaction_ended])
def signal_alone(request: pytest.FixtureRequest) -> Iterator[Signal]:
    """A session signal with none of its receivers (billing's, sites'), its cache emptied before and after."""
    signal: Signal = request.param
    receivers = signal.receivers
    signal.receivers = []
    signal.sender_receivers_cache.clear()
    try:
        yield signal
    finally:
        signal.receivers = receivers
        signal.sender_receivers_cache.clear()


def test_a_session_signals_receiver_connected_or_disconnected_after_a_send_is_heard_from_the_next(signal_alone):
    heard: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        heard.append(sender)

    signal_alone.send(sender=Transaction)  # none: looked up (and, cached, kept) for this sender
    signal_alone.connect(receiver, sender=Transaction)
    try:
        signal_alone.send(sender=Transaction)
    finally:
        signal_alone.disconnect(receiver, sender=Transaction)
    signal_alone.send(sender=Transaction)

    assert heard == [Transaction]
