"""The OCPP message log in the admin: CALLs with their answers, filters, pretty frames, a bounded page."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from ocpp.v16 import call as call16

from chargepoints.admin.shared import CHARGERS_SEARCHED
from chargepoints.models import ChargePoint, OcppMessage
from chargepoints.selectors import ocpp_call_answers, ocpp_message_pair
from chargepoints.services import LoggedFrame, charge_point_register, ocpp_messages_record
from conftest import ocpp_charger
from kernel.admin_lists import CappedCountPaginator

LOG = "/admin/chargepoints/ocppmessage/"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def ops(client: Client, db: None) -> Client:
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def log(charge_point_id: str, direction: str, frame: list, at: datetime) -> None:
    """Store one frame the way the gateway does."""
    action = frame[2] if frame[0] == 2 else ""
    ocpp_messages_record(
        frames=[
            LoggedFrame(
                charge_point_id=charge_point_id,
                direction=direction,
                frame=json.dumps(frame),
                created_at=at,
                message_type=frame[0],
                unique_id=frame[1],
                action=action,
            )
        ]
    )


def message(unique_id: str, message_type: int, charge_point_id: str = "CP-1") -> OcppMessage:
    return OcppMessage.objects.get(
        charge_point__charge_point_id=charge_point_id, unique_id=unique_id, message_type=message_type
    )


@pytest.fixture
def exchanges(register_charge_point) -> None:
    """On CP-1: an answered Heartbeat, a Reset refused with a CALLERROR, an unanswered StatusNotification."""
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    log("CP-1", "in", [2, "hb-1", "Heartbeat", {}], T0)
    log("CP-1", "out", [3, "hb-1", {"currentTime": "2025-03-01T08:00:00.012Z"}], T0 + timedelta(milliseconds=12))
    log("CP-1", "out", [2, "cmd-1", "RemoteStartTransaction", {"idTag": "TAG"}], T0 + timedelta(seconds=1))
    log("CP-1", "in", [3, "cmd-1", {"status": "Accepted"}], T0 + timedelta(seconds=1, milliseconds=80))
    log("CP-1", "out", [2, "cmd-2", "Reset", {"type": "Hard"}], T0 + timedelta(seconds=2))
    log("CP-1", "in", [4, "cmd-2", "NotSupported", "no hard reset", {}], T0 + timedelta(seconds=2, milliseconds=250))
    log("CP-1", "in", [2, "sn-1", "StatusNotification", {"connectorId": 1}], T0 + timedelta(seconds=3))
    # Same id on another charger, and the same id in the same direction: neither is CP-1's answer.
    log("CP-2", "out", [3, "sn-1", {}], T0 + timedelta(seconds=3, milliseconds=5))
    log("CP-1", "in", [3, "sn-1", {}], T0 + timedelta(seconds=3, milliseconds=6))


def results(response) -> list[OcppMessage]:
    assert response.status_code == 200, response
    return list(response.context["cl"].result_list)


def test_a_call_is_paired_with_its_answer_on_the_same_charger_in_the_other_direction(exchanges):
    heartbeat, answer = message("hb-1", 2), message("hb-1", 3)
    assert ocpp_message_pair(message=heartbeat) == answer
    assert ocpp_message_pair(message=answer) == heartbeat
    assert ocpp_message_pair(message=message("cmd-2", 2)) == message("cmd-2", 4)
    assert ocpp_message_pair(message=message("cmd-2", 4)) == message("cmd-2", 2)
    assert ocpp_message_pair(message=message("sn-1", 2)) is None
    assert ocpp_message_pair(message=message("sn-1", 3, "CP-2")) is None


def test_a_reused_unique_id_pairs_with_the_nearest_exchange(register_charge_point):
    register_charge_point("CP-1")
    log("CP-1", "in", [2, "1", "Heartbeat", {}], T0)
    log("CP-1", "out", [3, "1", {}], T0 + timedelta(milliseconds=5))
    log("CP-1", "in", [2, "1", "Heartbeat", {}], T0 + timedelta(hours=2))  # counter restarted after a reboot
    first, second = OcppMessage.objects.filter(message_type=2).order_by("created_at")
    assert ocpp_message_pair(message=second) is None
    assert ocpp_call_answers(messages=[first, second]) == {first.pk: message("1", 3)}


def test_the_list_shows_each_calls_outcome_and_round_trip(ops, exchanges):
    page = ops.get(LOG).content.decode()
    assert "CALLRESULT Accepted" in page and "80 ms" in page
    assert "CALLERROR NotSupported" in page and "250 ms" in page
    assert "12 ms" in page
    assert "no answer" in page  # the StatusNotification
    assert f"{LOG}{message('cmd-2', 4).pk}/change/" in page  # the outcome links to the answer


def test_the_change_page_pretty_prints_the_frame_and_its_pair(ops, exchanges):
    call, error = message("cmd-2", 2), message("cmd-2", 4)
    page = ops.get(f"{LOG}{call.pk}/change/").content.decode()
    assert (
        '<pre class="ocpp-frame">[\n  2,\n  &quot;cmd-2&quot;,\n  &quot;Reset&quot;,\n'
        "  {\n    &quot;type&quot;: &quot;Hard&quot;" in page
    )
    assert f"{LOG}{error.pk}/change/" in page
    assert "The answer (CALLERROR NotSupported)" in page and "250 ms apart" in page
    assert "&quot;no hard reset&quot;" in page  # the answer's frame, pretty-printed too

    page = ops.get(f"{LOG}{error.pk}/change/").content.decode()
    assert f"{LOG}{call.pk}/change/" in page and "The CALL" in page

    page = ops.get(f"{LOG}{message('sn-1', 2).pk}/change/").content.decode()
    assert "No answer logged." in page


def test_a_frame_that_is_not_json_is_shown_as_received(ops, register_charge_point):
    register_charge_point("CP-1")
    ocpp_messages_record(frames=[LoggedFrame(charge_point_id="CP-1", direction="in", frame="<garbage>", created_at=T0)])
    row = OcppMessage.objects.get()
    page = ops.get(f"{LOG}{row.pk}/change/").content.decode()
    assert '<pre class="ocpp-frame">&lt;garbage&gt;</pre>' in page
    assert "unparsed" in ops.get(LOG).content.decode()


def test_filters_by_charger_direction_type_and_action(ops, exchanges):
    cp2 = ChargePoint.objects.get(charge_point_id="CP-2")
    assert [m.unique_id for m in results(ops.get(LOG, {"charge_point__id__exact": cp2.pk}))] == ["sn-1"]
    outbound = results(ops.get(LOG, {"direction__exact": "out"}))
    assert len(outbound) == 4 and {m.direction for m in outbound} == {"out"}
    assert [m.unique_id for m in results(ops.get(LOG, {"message_type__exact": "4"}))] == ["cmd-2"]
    assert [m.message_type for m in results(ops.get(LOG, {"action__exact": "Reset"}))] == [2]
    calls = results(ops.get(LOG, {"message_type__exact": "2", "direction__exact": "in"}))
    assert [m.action for m in calls] == ["StatusNotification", "Heartbeat"]
    assert ops.get(LOG, {"charge_point__id__exact": "abc"}).status_code == 302  # ?e=1: bad filter value


def test_search_finds_a_charger_by_part_of_its_id_or_a_message_by_its_unique_id(ops, exchanges):
    assert {m.charge_point.charge_point_id for m in results(ops.get(LOG, {"q": "p-2"}))} == {"CP-2"}
    assert len(results(ops.get(LOG, {"q": "CP-"}))) == OcppMessage.objects.count()
    assert [m.message_type for m in results(ops.get(LOG, {"q": "cmd-2"}))] == [4, 2]
    assert results(ops.get(LOG, {"q": "cmd"})) == []  # unique ids match exactly


def test_a_search_looks_up_at_most_the_first_chargers_searched_as_the_other_lists_do(ops):
    """The search put every charger whose id contains the term in one IN list: a short term on a large
    fleet bound one parameter per charger (past PostgreSQL's 65,535 a statement fails, a 500). As the
    other lists' searches, the first ``CHARGERS_SEARCHED`` by id are looked up; a longer term finds
    the others."""
    ChargePoint.objects.bulk_create(
        ChargePoint(charge_point_id=f"CP-{number:04d}", heartbeat_interval=60)
        for number in range(CHARGERS_SEARCHED + 1)
    )
    for charge_point_id in ("CP-0000", f"CP-{CHARGERS_SEARCHED:04d}"):
        log(charge_point_id, "in", [2, f"hb-{charge_point_id}", "Heartbeat", {}], T0)

    assert [m.charge_point.charge_point_id for m in results(ops.get(LOG, {"q": "CP-"}))] == ["CP-0000"]
    found = results(ops.get(LOG, {"q": f"CP-{CHARGERS_SEARCHED:04d}"}))
    assert [m.charge_point.charge_point_id for m in found] == [f"CP-{CHARGERS_SEARCHED:04d}"]


def test_the_charger_filter_offers_recent_chargers_not_the_whole_fleet(ops, register_charge_point):
    now = timezone.now()
    for number in range(30):
        register_charge_point(f"CP-{number:02d}")
    ChargePoint.objects.update(last_seen=now)
    ChargePoint.objects.filter(charge_point_id="CP-29").update(last_seen=now + timedelta(seconds=1))
    quiet = ChargePoint.objects.create(charge_point_id="CP-QUIET", heartbeat_interval=60)

    charger_filter = next(f for f in ops.get(LOG).context["cl"].filter_specs if f.title == "charger")
    assert len(charger_filter.lookup_choices) == 10
    assert charger_filter.lookup_choices[0][1] == "CP-29"

    selected = ops.get(LOG, {"charge_point__id__exact": quiet.pk})
    charger_filter = next(f for f in selected.context["cl"].filter_specs if f.title == "charger")
    assert charger_filter.lookup_choices[0] == (str(quiet.pk), "CP-QUIET")


def test_time_range_presets_and_explicit_bounds(ops, register_charge_point):
    register_charge_point("CP-1")
    now = timezone.now()
    for unique_id, age in [("now", timedelta(minutes=1)), ("30m", timedelta(minutes=30)), ("2d", timedelta(days=2))]:
        log("CP-1", "in", [2, unique_id, "Heartbeat", {}], now - age)
    log("CP-1", "in", [2, "old", "Heartbeat", {}], T0)

    def ids(**params: str) -> list[str]:
        return [m.unique_id for m in results(ops.get(LOG, params))]

    assert ids(last="15m") == ["now"]
    assert ids(last="1h") == ["now", "30m"]
    assert ids(last="24h") == ["now", "30m"]
    assert ids(last="7d") == ["now", "30m", "2d"]
    assert ids() == ["now", "30m", "2d", "old"]
    assert ids(created_at__gte="2025-03-01T07:00:00Z", created_at__lt="2025-03-01T09:00:00Z") == ["old"]
    assert ids(created_at__lt="2025-03-01T08:00:00+00:00") == []
    # A hand-written link with an unencoded "+" arrives with a space.
    assert ops.get(f"{LOG}?created_at__gte=2025-03-01T08:00:00+00:00&last=").status_code == 302
    assert ids(created_at__gte="2025-03-01T07:59:59 00:00", created_at__lt="2025-03-02") == ["old"]
    assert ops.get(LOG, {"last": "1y"}).status_code == 302
    assert ops.get(LOG, {"created_at__gte": "yesterday"}).status_code == 302

    page = ops.get(LOG, {"created_at__gte": "2025-03-01T07:00:00Z"}).content.decode()
    assert "From 2025-03-01T07:00:00Z to now" in page


def test_the_page_renders_empty(ops):
    response = ops.get(LOG)
    assert results(response) == []
    assert "0 ocpp messages" in response.content.decode()


def test_a_full_page_costs_a_bounded_number_of_queries(ops, register_charge_point, django_assert_max_num_queries):
    for number in range(20):
        register_charge_point(f"CP-{number:02d}")
    frames = []
    for index in range(300):
        charge_point_id, at = f"CP-{index % 20:02d}", T0 + timedelta(seconds=index)
        frames += [
            LoggedFrame(
                charge_point_id=charge_point_id,
                direction="in",
                frame=json.dumps([2, f"m-{index}", "MeterValues", {}]),
                created_at=at,
                message_type=2,
                unique_id=f"m-{index}",
                action="MeterValues",
            ),
            LoggedFrame(
                charge_point_id=charge_point_id,
                direction="out",
                frame=json.dumps([3, f"m-{index}", {}]),
                created_at=at + timedelta(milliseconds=7),
                message_type=3,
                unique_id=f"m-{index}",
            ),
        ]
    ocpp_messages_record(frames=frames)
    with django_assert_max_num_queries(10):
        response = ops.get(LOG)
    rows = results(response)
    assert len(rows) == 100
    assert response.content.decode().count("7 ms") == 50  # every CALL on the page has its answer
    with django_assert_max_num_queries(10):
        assert ops.get(LOG, {"p": "3", "direction__exact": "in", "last": "7d"}).status_code == 200


def test_the_count_stops_at_the_cap(ops, register_charge_point, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 50)
    register_charge_point("CP-1")
    frames = [
        LoggedFrame(charge_point_id="CP-1", direction="in", frame="[]", created_at=T0 + timedelta(seconds=i))
        for i in range(120)
    ]
    ocpp_messages_record(frames=frames)
    response = ops.get(LOG)
    assert "More than 50 messages" in response.content.decode()
    assert ops.get(LOG, {"charge_point__id__exact": ChargePoint.objects.get().pk, "p": "1"}).status_code == 200


def test_a_boot_through_the_real_gateway_is_listed_with_its_answer(daphne, client):
    """Frames logged by a real daphne process from a real ``ocpp`` charger, read back in the admin."""
    charge_point = charge_point_register(charge_point_id="CP-LIVE", heartbeat_interval=60)

    async def boot() -> str:
        async with ocpp_charger(daphne, "1.6", "CP-LIVE") as charger:
            answer = await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            return answer.status

    assert asyncio.run(boot()) == "Accepted"
    deadline = time.monotonic() + 10
    while OcppMessage.objects.filter(charge_point=charge_point).count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    query = {"charge_point__id__exact": charge_point.pk, "action__exact": "BootNotification", "message_type__exact": 2}
    page = client.get(LOG, query)
    boot_call = results(page)[0]
    assert boot_call.message_type == 2 and boot_call.direction == "in"
    assert "CALLRESULT Accepted" in page.content.decode()
    detail = client.get(f"{LOG}{boot_call.pk}/change/").content.decode()
    assert "&quot;chargePointVendor&quot;: &quot;V&quot;" in detail
    assert "&quot;interval&quot;: 60" in detail  # the answer's frame


def test_a_hand_written_sort_by_a_column_not_sortable_is_ignored(ops, exchanges):
    """Only ``created_at`` is sortable (indexed): ``?o=5`` (unique id) sorted the whole log."""
    for ordered in ("?o=5", "?o=-4.5", "?o=1"):
        listed = ops.get(LOG + ordered)
        assert listed.status_code == 200
        assert not {"unique_id", "-unique_id", "action", "-action"} & set(listed.context["cl"].queryset.query.order_by)
    assert "-created_at" in ops.get(LOG + "?o=-0").context["cl"].queryset.query.order_by
