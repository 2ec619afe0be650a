"""The meter chart is a pure function from series to SVG: scaled, escaped, bounded in size; the
transaction page draws it from the session's samples (totals as billing sees them)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db.models.signals import post_init

from charging.admin.meter_chart import (
    BOTTOM,
    HEIGHT,
    LEFT,
    MAX_POINTS,
    MAX_TIME_TICKS,
    NO_DATA,
    POWER_COLOUR,
    RIGHT,
    TOP,
    WIDTH,
    downsample,
    meter_chart_svg,
    nice_ticks,
)
from charging.models import MeterSample
from charging.selectors import transaction_meter_series
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_start import StartRequest, transaction_start

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _points(svg: str, css: str) -> list[tuple[float, ...]]:
    line = ET.fromstring(svg).find(f".//{SVG}polyline[@class='{css}']")
    assert line is not None, css
    return [tuple(map(float, pair.split(","))) for pair in line.attrib["points"].split()]


def test_points_span_the_plot_area_from_the_first_to_the_last_sample():
    energy = [(T0, Decimal(0)), (T0 + timedelta(minutes=30), Decimal(5000)), (T0 + timedelta(hours=1), Decimal(10000))]
    power = [(T0, 11000), (T0 + timedelta(hours=1), 0)]
    svg = meter_chart_svg(energy_wh=energy, power_w=power)

    points = _points(svg, "meter-energy")
    assert [x for x, _ in points] == [LEFT, LEFT + (WIDTH - LEFT - RIGHT) / 2, WIDTH - RIGHT]
    bottom = HEIGHT - BOTTOM
    assert points[0][1] == bottom  # 0 Wh sits on the axis
    assert TOP <= points[2][1] < points[1][1] < bottom  # more energy is higher up
    assert _points(svg, "meter-power")[1] == (WIDTH - RIGHT, bottom)
    assert "Energy delivered (kWh)" in svg and "Power (kW)" in svg
    assert _time_labels(svg) == ["08:00", "08:15", "08:30", "08:45", "09:00"]
    assert "time (UTC), 2025-03-01" in svg  # the date once, in the admin's format


def _time_labels(svg: str) -> list[str | None]:
    return [text.text for text in ET.fromstring(svg).iter(f"{SVG}text") if text.get("class") == "meter-time"]


# The admin's format (2025-03-01 08:00:05 UTC), cut to what tells the ticks apart.
TIME_LABEL = re.compile(r"(\d{4}-\d{2}-\d{2})?( ?\d{2}:\d{2}(:\d{2})?)?")
SPANS = [timedelta(seconds=s) for s in (0, 1, 3, 4, 9, 59, 61, 150, 599, 601, 3599, 5400, 43_199, 82_800, 86_399)]
SPANS += [timedelta(days=d, hours=h) for d in (1, 2, 3, 6, 13, 40) for h in (0, 7)]


@pytest.mark.parametrize("start", [T0, T0 + timedelta(seconds=0.4), datetime(2025, 3, 1, 23, 59, 58, tzinfo=UTC)])
@pytest.mark.parametrize("span", SPANS, ids=str)
def test_time_labels_are_never_repeated_and_are_in_the_admin_format(start, span):
    labels = _time_labels(meter_chart_svg(energy_wh=[(start, 0), (start + span, 1000)], power_w=[(start, 5000)]))
    assert 2 <= len(labels) <= MAX_TIME_TICKS, labels
    assert len(set(labels)) == len(labels), labels
    assert all(label and TIME_LABEL.fullmatch(label) for label in labels), labels


def test_a_chart_across_midnight_dates_its_labels():
    start = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
    labels = _time_labels(meter_chart_svg(energy_wh=[(start, 0), (start + timedelta(hours=4), 9000)], power_w=[]))
    assert labels == [f"2025-03-0{day} {hour}:00" for day, hour in [(1, 22), (1, 23), (2, "00"), (2, "01"), (2, "02")]]


def test_without_power_readings_there_is_no_power_axis_but_a_note():
    svg = meter_chart_svg(energy_wh=[(T0, 0), (T0 + timedelta(minutes=30), 6000)], power_w=[])
    texts = {text.text: text for text in ET.fromstring(svg).iter(f"{SVG}text")}
    assert texts["No power data"].get("fill") == POWER_COLOUR
    assert not any(text.get("fill") == POWER_COLOUR for label, text in texts.items() if label != "No power data")
    assert "Power (" not in svg and "meter-power" not in svg.replace("meter-power-missing", "")
    assert f'x1="{WIDTH - RIGHT}" y1="{TOP}"' not in svg  # no right-hand axis line


def test_without_energy_readings_the_power_axis_alone_is_drawn():
    svg = meter_chart_svg(energy_wh=[], power_w=[(T0, 7000), (T0 + timedelta(minutes=30), 3000)])
    assert "No energy data" in svg and "Power (kW)" in svg and "Energy delivered (" not in svg
    assert len(_points(svg, "meter-power")) == 2


def test_small_values_keep_their_base_unit():
    svg = meter_chart_svg(energy_wh=[(T0, 0), (T0 + timedelta(minutes=5), 120)], power_w=[(T0, 900)])
    assert "Energy delivered (Wh)" in svg and "Power (W)" in svg


def test_text_is_escaped_and_the_result_is_well_formed_xml():
    svg = meter_chart_svg(energy_wh=[(T0, 1)], power_w=[], title='<script>alert("x")</script> & co')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg and "&amp; co" in svg
    assert ET.fromstring(svg).find(f"{SVG}title").text == '<script>alert("x")</script> & co'


def test_no_samples_says_so():
    svg = meter_chart_svg(energy_wh=[], power_w=[])
    assert NO_DATA in svg
    assert "polyline" not in svg and "circle" not in svg


def test_one_sample_is_a_dot_in_the_middle():
    svg = meter_chart_svg(energy_wh=[(T0, Decimal(2500))], power_w=[])
    dot = ET.fromstring(svg).find(f".//{SVG}circle[@class='meter-energy']")
    assert dot is not None
    assert float(dot.attrib["cx"]) == LEFT + (WIDTH - LEFT - RIGHT) / 2
    assert "polyline" not in svg


def test_samples_out_of_order_are_drawn_in_time_order_and_a_register_going_back_is_kept():
    energy = [(T0 + timedelta(minutes=20), 3000), (T0, 0), (T0 + timedelta(minutes=10), 4000)]
    points = _points(meter_chart_svg(energy_wh=energy, power_w=[]), "meter-energy")
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert points[1][1] < points[2][1]  # 4000 Wh drawn above the later 3000 Wh


def test_long_sessions_are_downsampled_keeping_peaks():
    power = [(T0 + timedelta(seconds=index), 7000 + (index % 7)) for index in range(20_000)]
    power[12_345] = (power[12_345][0], 22_000)
    svg = meter_chart_svg(energy_wh=[], power_w=power)
    points = _points(svg, "meter-power")
    assert len(points) <= MAX_POINTS
    heights = sorted({y for _, y in points})
    assert heights[0] < heights[1] - 50  # the one 22 kW reading is still drawn, far above the 7 kW ones
    assert len(svg) < 20_000  # a page-sized chart, not 20 000 points


def test_downsample_keeps_each_bucket_minimum_and_maximum_in_time_order():
    points = [(T0 + timedelta(seconds=i), float(i % 10)) for i in range(1000)]
    kept = downsample(points, max_points=100)
    assert len(kept) <= 100
    assert [at for at, _ in kept] == sorted(at for at, _ in kept)
    assert {value for _, value in kept} == {0.0, 9.0}
    assert downsample(points[:50], max_points=100) == points[:50]


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 10_000) == [0, 2500, 5000, 7500, 10_000]
    assert nice_ticks(0, 7.3) == [0, 2, 4, 6, 8]
    ticks = nice_ticks(-1200, 3300)
    assert ticks[0] <= -1200 and ticks[-1] >= 3300
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]


POWER = "Power.Active.Import"


def _session(register_charge_point, meter_start_wh: Decimal | None = Decimal(10_000)):
    register_charge_point("CP-1", ocpp_version="1.6")
    return transaction_start(
        StartRequest(
            charge_point_id="CP-1",
            ocpp_version="1.6",
            start_key="k1",
            started_at=T0,
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=meter_start_wh,
        )
    ).transaction


def _record(session, *samples: SampledValue) -> None:
    meter_values_record(charge_point_id="CP-1", connector_id=1, ocpp_transaction_id=str(session.pk), samples=samples)


@pytest.mark.django_db
def test_series_are_energy_since_the_meter_start_and_total_power_over_phases(register_charge_point):
    session = _session(register_charge_point)
    t1, t2 = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    _record(
        session,
        SampledValue(timestamp=t1, raw_value="11.5", unit="kWh"),
        *(SampledValue(timestamp=t1, raw_value="3.6", unit="kW", measurand=POWER, phase=p) for p in ("L1", "L2", "L3")),
        SampledValue(timestamp=t1, raw_value="230", unit="V", measurand="Voltage", phase="L1-N"),
    )
    _record(
        session,
        SampledValue(timestamp=t2, raw_value="13000"),
        SampledValue(timestamp=t2, raw_value="7000", unit="W", measurand=POWER),  # the total wins over phases
        SampledValue(timestamp=t2, raw_value="1", unit="kW", measurand=POWER, phase="L1"),
        SampledValue(timestamp=t2, raw_value="garbled", measurand=POWER),
    )
    series = transaction_meter_series(transaction=session)
    assert series.energy_wh == [(T0, 0), (t1, 1500), (t2, 3000)]
    assert series.power_w == [(t1, 10_800), (t2, 7000)]


@pytest.mark.django_db
def test_without_a_meter_start_energy_counts_from_the_first_reading(register_charge_point):
    session = _session(register_charge_point, meter_start_wh=None)
    _record(session, SampledValue(timestamp=T0 + timedelta(minutes=1), raw_value="500"))
    _record(session, SampledValue(timestamp=T0 + timedelta(minutes=2), raw_value="400"))  # going back: drawn as is
    assert [wh for _, wh in transaction_meter_series(transaction=session).energy_wh] == [0, -100]


@pytest.mark.django_db
def test_the_transaction_page_draws_the_chart_or_says_there_is_nothing_yet(client, register_charge_point):
    session = _session(register_charge_point)
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    page = f"/admin/charging/transaction/{session.pk}/change/"
    assert NO_DATA in client.get(page).content.decode()

    _record(
        session,
        SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="14000"),
        SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="7400", unit="W", measurand=POWER),
    )
    html = client.get(page).content.decode()
    svg = html[html.index("<svg xmlns") : html.index("</svg>", html.index("<svg xmlns")) + 6]
    assert 'class="meter-energy"' in svg and 'class="meter-power"' in svg
    assert "Energy delivered (kWh)" in svg and "Power (kW)" in svg
    ET.fromstring(svg)


@pytest.mark.django_db
def test_a_long_session_s_series_are_read_in_one_query(register_charge_point, django_assert_num_queries):
    """Each sample's resolution reads its text, unit and multiplier, which the read left out: three
    more queries per sample, and a day's session took the transaction's admin page minutes."""
    session = _session(register_charge_point)
    for minute in range(1, 21):
        at = T0 + timedelta(minutes=minute)
        _record(
            session,
            SampledValue(timestamp=at, raw_value=str(10_000 + 100 * minute)),
            SampledValue(timestamp=at, raw_value="7.4", unit="kW", measurand=POWER),
        )
    with django_assert_num_queries(1):
        series = transaction_meter_series(transaction=session)
    assert len(series.energy_wh) == 21 and len(series.power_w) == 20


@pytest.mark.django_db
def test_the_chart_reads_a_long_session_s_samples_as_rows_not_as_model_instances(register_charge_point):
    """A week's session sampled every 15 s (80,000 energy and power samples) took 3.8 s to chart,
    most of it building a MeterSample instance per row; the series are read as tuples (1.6 s)."""
    session = _session(register_charge_point)
    for minute in range(1, 31):
        at = T0 + timedelta(minutes=minute)
        _record(
            session,
            SampledValue(timestamp=at, raw_value=str(10_000 + 100 * minute)),
            SampledValue(timestamp=at, raw_value="7000", unit="W", measurand=POWER),
        )
    built: list[object] = []

    def count(sender: type, instance: object, **kwargs: object) -> None:
        built.append(instance)

    post_init.connect(count, sender=MeterSample)
    try:
        series = transaction_meter_series(transaction=session)
    finally:
        post_init.disconnect(count, sender=MeterSample)
    assert len(series.energy_wh) == 31 and len(series.power_w) == 30
    assert series.energy_wh[-1] == (T0 + timedelta(minutes=30), 3000) and series.power_w[0][1] == 7000
    assert built == []
